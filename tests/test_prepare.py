"""``occau prepare`` end to end on small trees laid out like the providers' downloads.

Labels come from the ``data_prep`` fixture (real file formats); frames are the astronaut photograph (skimage, public
domain) shifted by a few pixels per frame, so every frame has a real face and its position encodes the frame index.
BP4D frames are JPEG files named like the download; DISFA frames are an MJPG video written with cv2.VideoWriter.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest
from fake_trees import SHIFT, write_download, write_video

from occau.aus import BP4D_AUS
from occau.cli import main
from occau.data.prepare import PrepareConfig, PrepareError, prepare
from occau.data.prepared import PreparedDataset, read_manifest

skimage_data = pytest.importorskip("skimage.data")

BP4D_SUBJECTS = ("F001", "F007")  # parts 1 and 3
DISFA_SUBJECTS = ("SN001", "SN003")
BLANK = {("F001", "T2"): (0, 2)}  # frame positions without a face


@pytest.fixture(scope="module")
def trees(reference_dir: Path, tmp_path_factory) -> Path:
    return write_download(tmp_path_factory.mktemp("download"), reference_dir, BP4D_SUBJECTS, DISFA_SUBJECTS, BLANK)


@pytest.fixture(scope="module")
def bp4d_out(trees: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bp4d") / "prepared"
    argv = [
        "prepare",
        "bp4d",
        "--root",
        str(trees / "BP4D"),
        "--out",
        str(out),
        "--size",
        "112",
        "--subjects",
        *BP4D_SUBJECTS,
        "--workers",
        "2",
        "--no-progress",
    ]
    assert main(argv) == 0
    return out


def test_bp4d_end_to_end(bp4d_out: Path) -> None:
    info = json.loads((bp4d_out / "prepare.json").read_text())
    assert info["size"] == 112 and info["aus"] == list(BP4D_AUS) and len(info["template"]) == 5
    records = read_manifest(bp4d_out)
    assert len(records) == 2 * 8 * 4
    assert [r["status"] for r in records].count("reused") == 2
    failures = (bp4d_out / "failures.tsv").read_text().splitlines()
    assert failures[1:] == [
        "F001\tT2\t1129\treused\treused transform of frame 1130",
        "F001\tT2\t1131\treused\treused transform of frame 1130",
    ]
    summary = json.loads((bp4d_out / "summary.json").read_text())
    assert summary["unknown_labels"] == 1 and summary["labels_all_frames"]["per_au"]["AU17"]["unknown"] == 1
    planted = next(r for r in records if (r["subject"], r["sequence"], r["frame"]) == ("F001", "T1", 1581))
    assert planted["mask"][BP4D_AUS.index(17)] == 0 and planted["labels"][BP4D_AUS.index(17)] == 0
    for r in records[:3]:
        data = (bp4d_out / r["image"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert r["detector"] in ("yuface", "mtcnn") and len(r["landmarks"]) == 5
    # frame t of a task is shifted by SHIFT*t px: the landmarks follow, so frames were not mixed up
    t1 = [r for r in records if (r["subject"], r["sequence"]) == ("F007", "T1")]
    xs = [r["landmarks"][0][0] for r in t1]
    assert np.all(np.diff(xs) > SHIFT / 2)


def test_prepared_dataset_serves_face_samples(bp4d_out: Path) -> None:
    test = PreparedDataset(bp4d_out, split="test", fold=3)  # occau's fold 3 tests part 3 (ME-GraphAU's fold1)
    assert test.subjects == ("F007",) and len(test) == 32
    sample = test[0]
    assert sample["image"].shape == (112, 112, 3) and sample["image"].dtype == np.uint8
    assert sample["labels"].dtype == np.float32 and sample["label_mask"].all()
    assert (sample["subject"], sample["sequence"], sample["frame"]) == ("F007", "T1", 1698)
    assert np.isnan(sample["intensity"]).all()
    everything = PreparedDataset(bp4d_out, split="all")
    labels, mask, intensity = everything.label_arrays()
    assert labels.shape == (64, 12) and labels.dtype == np.float32 and (~mask).sum() == 1
    assert np.isnan(intensity).all()
    assert PreparedDataset(bp4d_out, split="test", fold=1).subjects == ("F001",)
    train = PreparedDataset(bp4d_out, split="train", fold=3)
    assert train.subjects == ("F001",) and train.class_weights().mean() == pytest.approx(1.0)
    # the crop is aligned: detecting in it puts the eyes near the template
    from occau.faces.face_detector import FaceDetector
    from occau.faces.template import template_points

    face = FaceDetector().detect_one(cv2.cvtColor(sample["image"], cv2.COLOR_RGB2BGR))
    assert np.linalg.norm(face.landmarks5[:2] - template_points(112)[:2], axis=1).max() < 6


def test_disfa_video_end_to_end_and_resume(trees: Path, tmp_path: Path) -> None:
    out = tmp_path / "disfa"
    cfg = PrepareConfig(
        "disfa", trees / "DISFA", out, subjects=DISFA_SUBJECTS, size=96, image_format="png", workers=1, progress=False
    )
    first = prepare(cfg)
    assert first.frames == 10 and first.processed == 10
    records = read_manifest(out)
    sn001 = [r for r in records if r["subject"] == "SN001"]
    assert [r["frame"] for r in sn001] == [0, 1, 2, 3, 4]
    assert [r["intensity"][0] for r in sn001] == [1.0, 3.0, 0.0, 2.0, 0.0]  # SN001_au1.txt: 1,3,0,2,0
    assert [r["labels"][0] for r in sn001] == [0, 1, 0, 1, 0]
    assert np.all(np.diff([r["landmarks"][0][0] for r in sn001]) > SHIFT / 2)  # video frame t <-> label line t
    ds = PreparedDataset(out, split="all")
    assert ds[0]["intensity"].tolist() == [1.0, 4.0, 2.0, 5.0, 0.0, 2.0, 0.0, 3.0]

    # interrupt SN003 after two frames, with a torn third journal line; the manifest is not written yet
    journal = out / "work" / "SN003__left.jsonl"
    lines = journal.read_text().splitlines()
    part = out / "work" / "SN003__left.part.jsonl"
    part.write_text("\n".join(lines[:2]) + "\n" + lines[2][:40])
    journal.unlink()
    (out / "manifest.jsonl").unlink()
    kept = {r["frame"]: (out / r["image"]).stat().st_mtime_ns for r in records if r["subject"] == "SN003"}
    second = prepare(cfg)
    assert second.processed == 3 and second.frames == 10
    again = {r["frame"]: r for r in read_manifest(out) if r["subject"] == "SN003"}
    assert sorted(again) == [0, 1, 2, 3, 4]
    assert all((out / again[f]["image"]).stat().st_mtime_ns == kept[f] for f in (0, 1))  # finished work kept
    assert prepare(cfg).processed == 0
    with pytest.raises(PrepareError, match="other options.*size"):
        prepare(
            PrepareConfig(
                "disfa",
                trees / "DISFA",
                out,
                subjects=DISFA_SUBJECTS,
                size=128,
                image_format="png",
                workers=1,
                progress=False,
            )
        )


def test_skip_policy_and_aligned_mode_with_megraphau_lists(trees: Path, bp4d_out: Path, tmp_path: Path) -> None:
    from occau.data import bp4d, megraphau_lists

    out = tmp_path / "skip"
    cfg = PrepareConfig(
        "bp4d", trees / "BP4D", out, subjects=("F001",), size=64, no_face="skip", workers=1, progress=False
    )
    result = prepare(cfg)
    assert result.frames == 30 and result.summary["status"] == {"detected": 30, "skipped": 2}
    assert "F001\tT2\t1129\tskipped\tskipped (no face)" in (out / "failures.tsv").read_text()

    # someone who has ME-GraphAU-style crops + lists: F001/T1/1578.jpg and BP4D_*_fold*.txt
    lists = tmp_path / "list"
    megraphau_lists.export_lists(bp4d.read_labels(trees / "BP4D", BP4D_SUBJECTS), lists, unknown="negative")
    crops = tmp_path / "img"
    for r in read_manifest(bp4d_out):
        dst = crops / r["subject"] / r["sequence"] / f"{r['frame']}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(bp4d_out / r["image"], dst)
    aligned = tmp_path / "aligned"
    assert (
        main(
            [
                "prepare",
                "bp4d",
                "--root",
                str(trees / "BP4D"),
                "--out",
                str(aligned),
                "--lists",
                str(lists),
                "--aligned",
                "--images",
                str(crops),
                "--size",
                "56",
                "--workers",
                "1",
                "--no-progress",
            ]
        )
        == 0
    )
    records = read_manifest(aligned)
    assert len(records) == 64 and {r["status"] for r in records} == {"aligned-input"}
    assert records[0]["transform"] == [[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]]
    reference = {(r["subject"], r["sequence"], r["frame"]): r["labels"] for r in read_manifest(bp4d_out)}
    assert all(reference[(r["subject"], r["sequence"], r["frame"])] == r["labels"] for r in records)
    # the list format cannot say "unknown": the planted 9 was exported as 0 and comes back as a known 0
    assert sum(0 in r["mask"] for r in records) == 0


def test_bad_inputs_name_the_file(trees: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    shutil.copytree(trees / "DISFA/ActionUnit_Labels", bad / "DISFA/ActionUnit_Labels")
    vids = bad / "DISFA/Videos_LeftCamera"
    write_video(vids / "LeftVideoSN001_comp.avi", 3)  # shorter than its 5 label lines
    cfg = PrepareConfig(
        "disfa", bad / "DISFA", tmp_path / "o1", subjects=("SN001",), size=64, workers=1, progress=False
    )
    with pytest.raises(PrepareError, match=r"LeftVideoSN001_comp\.avi: video ends after 3 frames but its labels"):
        prepare(cfg)
    data = (trees / "DISFA/Videos_LeftCamera/LeftVideoSN001_comp.avi").read_bytes()
    (vids / "LeftVideoSN001_comp.avi").write_bytes(data[: len(data) // 2])  # cut in the middle of the file
    # depending on where the cut falls, OpenCV cannot open the file or it stops early; either way the file is named
    with pytest.raises(PrepareError, match=r"LeftVideoSN001_comp\.avi: (cannot open the video|video ends after)"):
        prepare(replace(cfg, out=tmp_path / "o1b"))
    (vids / "LeftVideoSN001_comp.avi").unlink()
    with pytest.raises(PrepareError, match=r"LeftVideoSN001_comp\.avi: DISFA left-camera video is missing"):
        prepare(cfg)

    label = bad / "DISFA/ActionUnit_Labels/SN001/SN001_au12.txt"
    label.write_text(label.read_text().replace("3,", "3;", 1))
    with pytest.raises(PrepareError, match=r"SN001_au12\.txt, line 3"):
        prepare(cfg)

    shutil.copytree(trees / "BP4D/AUCoding", bad / "BP4D/AUCoding")
    (bad / "BP4D/AUCoding/AU_OCC/F001_T5.csv").unlink()
    cfg = PrepareConfig("bp4d", bad / "BP4D", tmp_path / "o2", subjects=("F001",), workers=1, progress=False)
    with pytest.raises(PrepareError, match=r"F001_T5\.csv: BP4D AU occurrence file is missing"):
        prepare(cfg)
    cli = ["prepare", "bp4d", "--root", str(bad / "BP4D"), "--out", str(tmp_path / "o3"), "--subjects", "F001"]
    assert main([*cli, "--no-progress"]) == 1  # the CLI reports the error and fails

    shutil.copy(trees / "BP4D/AUCoding/AU_OCC/F001_T5.csv", bad / "BP4D/AUCoding/AU_OCC/F001_T5.csv")
    images = bad / "BP4D/BP4D-training/F001"
    shutil.copytree(trees / "BP4D/BP4D-training/F001", images, ignore=shutil.ignore_patterns("T3"))
    with pytest.raises(PrepareError, match=r"F001/T3: frame folder for F001/T3 is missing"):
        prepare(cfg)
