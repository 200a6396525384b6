"""BP4D/DISFA label readers, folds, ME-GraphAU lists, weights and relation labels vs the official scripts' outputs.

The ``data_prep`` fixture holds made-up raw label files in the real formats and every list the official ME-GraphAU
scripts wrote from them. One BP4D 9 (unknown) is planted in F001_T1, row 3, AU17: the official scripts pass it on as
a label, count it as a positive in the weights and turn it into relation codes > 3. occau must agree everywhere else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from occau.aus import BP4D_AUS, DISFA_AUS
from occau.data import bp4d, disfa, folds, megraphau_lists, statistics

PLANTED = ("F001", "T1", 3, BP4D_AUS.index(17))  # subject, task, row, AU column
PLANTED_PATH = "F001/T1/1581.jpg"

BP4D_EXAMPLE = (
    "0," + ",".join(str(i) for i in range(1, 100)) + "\n"
    "952,1,0,9,0,0,0,0,9,1,0,0,0,9,0,0,0,0,0,9,0,9,0,0,0,9,9,0,0" + ",9" * 71 + "\n"
    "953,1,1,9,0,0,1,1,9,1,0,0,1,9,0,0,1,1,0,9,1,9,0,1,0,9,9,0,0" + ",9" * 71 + "\n"
)


@pytest.fixture(scope="module")
def prep(reference_dir: Path, tmp_path_factory) -> dict:
    folder = reference_dir / "data_prep"
    raw = json.loads((folder / "raw_inputs.json").read_text())
    official = json.loads((folder / "official_outputs.json").read_text())
    root = tmp_path_factory.mktemp("raw")
    for rel, text in raw.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    seqs = {"BP4D": bp4d.read_labels(root / "data" / "BP4D"), "DISFA": disfa.read_labels(root / "data" / "DISFA")}
    return {"root": root, "official": official, "seqs": seqs}


def _official(prep: dict, ds: str, name: str) -> str:
    return prep["official"][f"data/{ds}/list/{name}"]


def _export(prep: dict, ds: str, unknown: str, tmp_path: Path) -> tuple[Path, megraphau_lists.ExportReport]:
    out = tmp_path / f"{ds}_{unknown}"
    return out, megraphau_lists.export_lists(prep["seqs"][ds], out, unknown=unknown)


# --------------------------------------------------------------------------------------------------- readers


def test_bp4d_reader_on_the_documented_example(tmp_path: Path) -> None:
    path = tmp_path / "F002_T1.csv"
    path.write_text(BP4D_EXAMPLE)
    seq = bp4d.read_occurrence_csv(path, "F002", "T1")
    assert seq.frames.tolist() == [952, 953]
    assert seq.labels[0].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert seq.labels[1].tolist() == [1, 1, 0, 1, 1, 0, 1, 0, 0, 1, 1, 0]
    assert seq.mask.all() and np.isnan(seq.intensity).all()
    assert megraphau_lists.image_path(seq, 952) == "F002/T1/952.jpg"


def test_disfa_reader_on_the_documented_example(tmp_path: Path) -> None:
    for au in DISFA_AUS:
        (tmp_path / f"SN001_au{au}.txt").write_text(
            "1,1\n2,3\n3,0\n4,2\n5,0\n" if au == 1 else "1,0\n2,0\n3,5\n4,0\n5,1\n"
        )
    seq = disfa.read_subject(tmp_path, "SN001")
    assert seq.frames.tolist() == [0, 1, 2, 3, 4]  # video frame t <-> label line t (frame index t + 1)
    assert seq.labels[:, 0].tolist() == [0, 1, 0, 1, 0]
    assert seq.labels[:, 1].tolist() == [0, 0, 1, 0, 0]
    assert seq.intensity[:, 0].tolist() == [1, 3, 0, 2, 0]
    assert [megraphau_lists.image_path(seq, f) for f in seq.frames[:2]] == ["SN001/0.png", "SN001/1.png"]


def test_planted_nine_is_unknown_not_positive(prep: dict) -> None:
    subject, task, row, col = PLANTED
    seqs = prep["seqs"]["BP4D"]
    seq = next(s for s in seqs if (s.subject, s.sequence) == (subject, task))
    assert not seq.mask[row, col] and seq.labels[row, col] == 0
    assert seq.mask.sum() == seq.mask.size - 1
    counts = statistics.label_counts(
        np.concatenate([s.labels for s in seqs]), np.concatenate([s.mask for s in seqs]), BP4D_AUS
    )
    assert counts.unknown.tolist() == [0] * 9 + [1] + [0, 0]
    assert (counts.positive + counts.negative + counts.unknown == counts.frames).all()


# --------------------------------------------------------------------------------------------------- lists


def test_disfa_lists_equal_official_byte_for_byte(prep: dict, tmp_path: Path) -> None:
    out, report = _export(prep, "DISFA", "drop", tmp_path)
    assert report.dropped_frames == [] and report.frames_per_part == {1: 44, 2: 45, 3: 45}
    names = [k.split("/")[-1] for k in prep["official"] if "/DISFA/" in k]
    assert len(names) == 18
    for name in names:
        assert (out / name).read_text() == _official(prep, "DISFA", name), name


def test_bp4d_lists_differ_from_official_only_at_the_planted_nine(prep: dict, tmp_path: Path) -> None:
    out, report = _export(prep, "BP4D", "negative", tmp_path)
    assert report.unknown_written_as_negative == 1
    col = PLANTED[3]
    for key, text in prep["official"].items():
        name = key.split("/")[-1]
        if "/BP4D/" not in key or "weight" in name:
            continue
        ours, theirs = (out / name).read_text().splitlines(), text.splitlines()
        assert len(ours) == len(theirs), name
        paths = (out / name.replace("label", "img_path").replace("AU_relation", "img_path")).read_text().split()
        for i, (a, b) in enumerate(zip(ours, theirs)):
            if a == b:
                continue
            assert paths[i] == PLANTED_PATH, (name, i)  # only the planted frame differs ...
            a, b = np.array(a.split(), int), np.array(b.split(), int)
            diff = np.flatnonzero(a != b)
            if "relation" in name:  # ... only in pairs involving AU17, where upstream writes 2*9+a_k or 2*a_j+9
                n = len(BP4D_AUS)
                assert all(d // n == col or d % n == col for d in diff)
                assert (b[diff] > 3).all() and (a <= 3).all()
            else:
                assert diff.tolist() == [col] and b[col] == 9 and a[col] == 0


def test_bp4d_drop_policy_removes_exactly_the_planted_frame(prep: dict, tmp_path: Path) -> None:
    out, report = _export(prep, "BP4D", "drop", tmp_path)
    assert report.dropped_frames == [PLANTED_PATH]
    for f in (1, 2, 3):
        for split in ("train", "test"):
            name = f"BP4D_{split}_img_path_fold{f}.txt"
            expected = [p for p in _official(prep, "BP4D", name).split() if p != PLANTED_PATH]
            assert (out / name).read_text().split() == expected


def test_weights_equal_official_where_no_nine_and_explain_the_difference(prep: dict, tmp_path: Path) -> None:
    out, _ = _export(prep, "BP4D", "drop", tmp_path)
    # ME-GraphAU fold3 trains on parts 2+3: no 9 there, so the numbers agree to the printed digit.
    assert (out / "BP4D_train_weight_fold3.txt").read_text() == _official(prep, "BP4D", "BP4D_train_weight_fold3.txt")
    assert (out / "BP4D_weight_fold3.txt").read_text() == _official(prep, "BP4D", "BP4D_train_weight_fold3.txt")
    seqs = prep["seqs"]["BP4D"]
    for me_fold in (1, 2):  # these train on part 1 (F001): the official weights count the 9 as a positive
        official = _official(prep, "BP4D", f"BP4D_train_weight_fold{me_fold}.txt")
        assert (out / f"BP4D_train_weight_fold{me_fold}.txt").read_text() != official
        parts = folds.train_parts(folds.megraphau_fold_to_occau(me_fold))
        train = [s for s in seqs if folds.subject_part("bp4d", s.subject) in parts]
        labels = np.concatenate([s.labels for s in train])
        mask = np.concatenate([s.mask for s in train])
        upstream_rates = np.where(mask, labels, 1).mean(0)  # 9 > 0 counts as occurrence, over all frames
        upstream = "\t".join(f"{w:f}" for w in statistics.weights_from_rates(upstream_rates)) + "\n"
        assert upstream == official
        ours = statistics.class_weights(labels, mask)
        assert ours.mean() == pytest.approx(1.0)
        assert ours[PLANTED[3]] > statistics.weights_from_rates(upstream_rates)[PLANTED[3]]


def test_relation_validity_marks_pairs_with_the_unknown_au(prep: dict) -> None:
    seq = next(s for s in prep["seqs"]["BP4D"] if (s.subject, s.sequence) == PLANTED[:2])
    rel, valid = statistics.pair_states(seq.labels, seq.mask)
    n, col = len(BP4D_AUS), PLANTED[3]
    invalid = np.flatnonzero(~valid[PLANTED[2]])
    assert sorted(invalid.tolist()) == sorted({j * n + col for j in range(n)} | {col * n + k for k in range(n)})
    assert valid[[0, 1, 2]].all() and rel.max() <= 3
    a = seq.labels[0].astype(int)
    assert rel[0, 4 * n + 7] == 2 * a[4] + a[7]


def test_import_official_lists_maps_folds_and_recovers_the_labels(prep: dict, tmp_path: Path) -> None:
    for ds, dataset in (("BP4D", "bp4d"), ("DISFA", "disfa")):
        folder = tmp_path / ds
        folder.mkdir()
        for key, text in prep["official"].items():
            if f"/{ds}/" in key:
                (folder / key.split("/")[-1]).write_text(text)
        imported = megraphau_lists.import_lists(folder, dataset)
        ours = {(s.subject, s.sequence): s for s in prep["seqs"][ds]}
        assert {(s.subject, s.sequence) for s in imported} == set(ours)
        for s in imported:
            ref = ours[(s.subject, s.sequence)]
            np.testing.assert_array_equal(s.frames, ref.frames)
            np.testing.assert_array_equal(s.labels, ref.labels)
            np.testing.assert_array_equal(s.mask, ref.mask)  # the 9 in the list becomes unknown again


def test_import_rejects_sample_label_lists_and_foreign_subjects(prep: dict, tmp_path: Path) -> None:
    paths = _official(prep, "DISFA", "DISFA_test_img_path_fold1.txt")
    labels = _official(prep, "DISFA", "DISFA_test_label_fold1.txt").splitlines()
    (tmp_path / "p.txt").write_text(paths)
    (tmp_path / "l.txt").write_text("\n".join(labels[:5]) + "\n")
    with pytest.raises(ValueError, match=r"l\.txt: 5 label lines for 45 paths"):
        megraphau_lists.read_list_pair(tmp_path / "p.txt", tmp_path / "l.txt", 8)
    # ME-GraphAU fold1 tests part 3; a part-1 list in its place is a fold mix-up
    swapped = {1: 3, 2: 2, 3: 1}  # write ME fold3's lists (part 1) as fold1 and vice versa
    for f, src in swapped.items():
        for kind in ("img_path", "label"):
            text = _official(prep, "DISFA", f"DISFA_test_{kind}_fold{src}.txt")
            (tmp_path / f"DISFA_test_{kind}_fold{f}.txt").write_text(text)
    with pytest.raises(ValueError, match=r"fold3\.txt: ME-GraphAU fold3 should test part 1"):
        megraphau_lists.import_lists(tmp_path, "disfa")


# --------------------------------------------------------------------------------------------------- folds, weights


def test_parts_match_protocol_and_fold_mapping() -> None:
    protocol_bp4d_part3 = [
        "F004",
        "F006",
        "F007",
        "F012",
        "F014",
        "F015",
        "F017",
        "F019",
        "F021",
        "M003",
        "M006",
        "M009",
        "M015",
    ]
    assert sorted(folds.BP4D_PARTS[2]) == protocol_bp4d_part3
    assert sorted(folds.DISFA_PARTS[0]) == [
        "SN001",
        "SN002",
        "SN009",
        "SN010",
        "SN016",
        "SN026",
        "SN027",
        "SN030",
        "SN032",
    ]
    assert [len(p) for p in folds.BP4D_PARTS] == [14, 14, 13] and len(set(folds.all_subjects("bp4d"))) == 41
    assert [folds.megraphau_fold_to_occau(f) for f in (1, 2, 3)] == [3, 2, 1]
    assert [folds.occau_fold_to_megraphau(f) for f in (1, 2, 3)] == [3, 2, 1]
    for ds in ("bp4d", "disfa"):
        for k in (1, 2, 3):
            split = folds.fold_split(ds, k)
            assert split.test == folds.dataset_parts(ds)[k - 1]
            assert not set(split.train) & set(split.val) and not set(split.train + split.val) & set(split.test)
            assert sorted(split.train + split.val + split.test) == sorted(folds.all_subjects(ds))
            assert len(split.val) == round((len(folds.all_subjects(ds)) - len(split.test)) / 6)
            assert split == folds.fold_split(ds, k)
    val = folds.fold_split("bp4d", 1).val
    assert any(s.startswith("F") for s in val) and any(s.startswith("M") for s in val)


def test_class_weights_hand_computed() -> None:
    labels = np.array([[1, 0], [0, 1], [0, 1], [0, 1], [1, 0]], dtype=np.uint8)
    mask = np.ones_like(labels, dtype=bool)
    # rates 2/5 and 3/5 -> inverse 2.5, 1.667 -> normalised to mean 1: 1.2, 0.8
    np.testing.assert_allclose(statistics.class_weights(labels, mask), [1.2, 0.8])
    mask[4, 0] = False  # AU0 now 1/4 -> inverse 4 vs 5/3 -> 2*4/(4+5/3) and 2*(5/3)/(4+5/3)
    np.testing.assert_allclose(statistics.class_weights(labels, mask), [8 / (17 / 3), (10 / 3) / (17 / 3)])
    with pytest.raises(ValueError, match="no positive"):
        statistics.class_weights(np.zeros((3, 2), np.uint8), np.ones((3, 2), bool))


# --------------------------------------------------------------------------------------------------- bad input


def test_bad_label_files_name_file_and_line(prep: dict, tmp_path: Path) -> None:
    good = (prep["root"] / "data/BP4D/AUCoding/AU_OCC/F001_T1.csv").read_text().splitlines()
    path = tmp_path / "F001_T1.csv"
    path.write_text("\n".join(good[:3] + [good[3][:-2]] + good[4:]) + "\n")  # a row with a missing field
    with pytest.raises(ValueError, match=r"F001_T1\.csv, line 4: 99 fields, the header has 100"):
        bp4d.read_occurrence_csv(path, "F001", "T1")
    path.write_text("\n".join(good[:2] + [good[2].replace(",", ",5,", 1)[: len(good[2])]] + good[3:]) + "\n")
    with pytest.raises(ValueError, match=r"F001_T1\.csv, line 3: AU1 has code 5"):
        bp4d.read_occurrence_csv(path, "F001", "T1")
    with pytest.raises(FileNotFoundError, match=r"M001_T2\.csv: BP4D AU occurrence file is missing"):
        bp4d.read_occurrence_csv(tmp_path / "M001_T2.csv", "M001", "T2")

    (tmp_path / "SN001_au1.txt").write_text("1,0\n2,3\n3;1\n")
    with pytest.raises(ValueError, match=r"SN001_au1\.txt, line 3: expected 'frame,intensity'"):
        disfa.read_intensity_file(tmp_path / "SN001_au1.txt")
    (tmp_path / "SN001_au1.txt").write_text("1,0\n3,3\n")
    with pytest.raises(ValueError, match=r"line 2: frame index 3, expected 2"):
        disfa.read_intensity_file(tmp_path / "SN001_au1.txt")
    for au in DISFA_AUS:
        (tmp_path / f"SN001_au{au}.txt").write_text("1,0\n2,1\n" + ("3,0\n" if au == 26 else ""))
    with pytest.raises(ValueError, match=r"SN001_au26\.txt: 3"):
        disfa.read_subject(tmp_path, "SN001")
