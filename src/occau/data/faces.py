"""An unlabelled face collection (any folder tree of photos) to aligned crops for MAE pretraining.

``occau prepare faces --root PHOTOS --out DIR`` writes the same layout as ``occau prepare bp4d`` (``prepare.json``,
``manifest.jsonl``, ``failures.tsv``, ``summary.json``, ``crops/``) with dataset ``faces`` and no AUs, so the MAE
stage reads it through ``data.source: prepared`` like any prepared folder. The crops are aligned to the same template
as BP4D/DISFA, which is what makes a face MAE worth having. A face collection has no labels and no folds: all of it
is pretraining data (split ``all``), and it must not hold BP4D/DISFA subjects, or the MAE sees test faces.

One crop per photo: the largest face (a group photo gives its most prominent face). Photos are processed in sorted
order, one process; every finished photo is appended to ``work/journal.jsonl`` after its crop has been written
atomically, so a rerun of the same command resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from occau.data.layout import CROPS_DIR, FORMAT_VERSION, INFO_FILE, WORK_DIR
from occau.data.prepare import PrepareError, _atomic_text, write_outputs
from occau.faces.template import FIVE_POINTS, ZOOM

FACES = "faces"  # the dataset name of an unlabelled collection in prepare.json
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
JOURNAL = "journal.jsonl"
DEFINING = ("size", "image_format", "jpeg_quality", "aligned", "backends", "min_score")


@dataclass(frozen=True)
class FacesConfig:
    root: Path  # folder tree of photos (searched recursively)
    out: Path
    size: int = 224
    image_format: str = "jpg"
    jpeg_quality: int = 95
    aligned: bool = False  # photos are already aligned face crops: resize only, no detection
    backends: tuple[str, ...] | None = None  # default: every installed detector, yuface first
    min_score: float = 0.5
    progress: bool = True


def find_photos(root: Path, out: Path) -> list[Path]:
    """Image files under ``root`` in sorted order, leaving out ``out`` when it lies inside ``root``."""
    if not root.is_dir():
        raise PrepareError(f"{root}: no such folder")
    out = out.resolve()
    photos = sorted(
        p for p in root.rglob("*")
        if p.suffix.lower() in PHOTO_SUFFIXES and p.is_file() and out not in p.resolve().parents
    )  # fmt: skip
    if not photos:
        raise PrepareError(f"{root}: no image files found (looked for {' '.join(PHOTO_SUFFIXES)}, recursively)")
    return photos


def prepare_faces(config: FacesConfig) -> dict:
    """Detect, align and crop one face per photo; returns the summary (also written to ``summary.json``)."""
    from tqdm import tqdm

    from occau.data.images import InputError, read_image
    from occau.faces.face_detector import FaceDetector

    if config.image_format not in ("jpg", "png"):
        raise PrepareError(f"image_format must be jpg or png, got {config.image_format!r}")
    unknown = [b for b in config.backends or () if b not in ("yuface", "mtcnn")]
    if unknown:
        raise PrepareError(f"unknown face detector(s) {unknown}; expected yuface and/or mtcnn")
    root, out = Path(config.root), Path(config.out)
    photos = find_photos(root, out)
    _start(config)
    journal_path = out / WORK_DIR / JOURNAL
    done = _load_journal(journal_path, out)
    detector = None if config.aligned else FaceDetector(config.backends, config.min_score)
    todo = [p for p in photos if p.relative_to(root).as_posix() not in done]
    with journal_path.open("a") as journal:
        for photo in tqdm(todo, unit="photo", desc="prepare faces", disable=not config.progress):
            rel = photo.relative_to(root).as_posix()
            record: dict = {"source": rel, "status": "", "image": None, "reason": None}
            try:
                image = read_image(photo)
            except InputError as err:
                record |= {"status": "unreadable", "reason": str(err)}
            else:
                record |= _crop(config, image, rel, detector)
            journal.write(json.dumps(record) + "\n")
            journal.flush()
            done[rel] = record
    return _finish(config, [done[p.relative_to(root).as_posix()] for p in photos])


def _crop(config: FacesConfig, image: np.ndarray, rel: str, detector) -> dict:
    """Crop one photo: aligned to the template (or just resized with ``aligned``), written atomically."""
    from occau.faces.align import similarity_transform, warp_face

    if config.aligned:
        h, w = image.shape[:2]
        crop = cv2.resize(image, (config.size, config.size), interpolation=cv2.INTER_AREA)
        matrix, det, status = np.array([[config.size / w, 0, 0], [0, config.size / h, 0]]), None, "aligned-input"
    else:
        det = detector.detect_one(image)
        matrix = None if det is None else similarity_transform(det.landmarks5, config.size)
        if matrix is None:
            return {"status": "skipped", "reason": "no face"}
        crop, status = warp_face(image, matrix, config.size), "detected"
    crop_rel = f"{CROPS_DIR}/{rel}.{config.image_format}"  # keeps the suffix: a.jpg and a.png stay apart
    return {
        "status": status,
        "image": crop_rel,
        "sha256": _write(config, crop_rel, crop),
        "detector": None if det is None else det.detector,
        "score": None if det is None else round(float(det.score), 4),
        "landmarks": None if det is None else np.round(det.landmarks5, 2).tolist(),
        "transform": np.asarray(matrix, dtype=np.float64).round(6).tolist(),
    }


def _write(config: FacesConfig, rel: str, crop: np.ndarray) -> str:
    params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality] if config.image_format == "jpg" else []
    ok, buf = cv2.imencode("." + config.image_format, crop, params)
    if not ok:
        raise PrepareError(f"could not encode the crop {rel}")
    path = Path(config.out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(buf.tobytes())
    os.replace(tmp, path)
    return hashlib.sha256(buf.tobytes()).hexdigest()


def _info(config: FacesConfig) -> dict:
    from occau import __version__
    from occau.faces.face_detector import available_backends

    return {
        "format": FORMAT_VERSION,
        "dataset": FACES,
        "aus": [],
        "size": config.size,
        "image_format": config.image_format,
        "jpeg_quality": config.jpeg_quality if config.image_format == "jpg" else None,
        "aligned": config.aligned,
        "backends": None if config.aligned else list(config.backends or available_backends()),
        "min_score": config.min_score,
        "template": None if config.aligned else FIVE_POINTS.tolist(),
        "template_zoom": None if config.aligned else ZOOM,
        "label_source": None,
        "occau_version": __version__,
    }


def _start(config: FacesConfig) -> None:
    """Write prepare.json, or check that a resumed run uses the same crop options."""
    out = Path(config.out)
    (out / WORK_DIR).mkdir(parents=True, exist_ok=True)
    info, path = _info(config), out / INFO_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), info[k]) for k in ("dataset", *DEFINING) if old.get(k) != info[k]}
        if diff:
            raise PrepareError(f"{path}: {out} was prepared with other options {diff} (was, now); "
                               "use the same options to resume or a new --out")
        return
    _atomic_text(path, json.dumps(info, indent=1) + "\n")


def _load_journal(path: Path, out: Path) -> dict[str, dict]:
    """Photos finished by an earlier run; a torn last line or a record whose crop is gone is redone."""
    done: dict[str, dict] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                break  # written at the moment of interruption
            if rec["image"] is None or (out / rec["image"]).is_file():
                done[rec["source"]] = rec
    _atomic_text(path, "".join(json.dumps(r) + "\n" for r in done.values()))
    return done


def _finish(config: FacesConfig, records: list[dict]) -> dict:
    """manifest.jsonl (one line per crop, in photo order), failures.tsv and summary.json."""
    out = Path(config.out)
    manifest, failures, status = [], ["source\tstatus\treason\n"], {}
    for frame, rec in enumerate(records):
        status[rec["status"]] = status.get(rec["status"], 0) + 1
        if rec["image"] is None:
            failures.append(f"{rec['source']}\t{rec['status']}\t{rec['reason']}\n")
            continue
        parts = rec["source"].split("/")
        manifest.append({
            "subject": parts[0] if len(parts) > 1 else ".",  # a top-level folder per identity, as most collections
            "sequence": "/".join(parts[1:-1]) or ".",
            "frame": frame,
            "labels": [], "mask": [], "intensity": [],
            **{k: rec.get(k) for k in ("image", "source", "status", "detector", "score", "landmarks", "transform",
                                        "sha256")},
        })  # fmt: skip
    summary = {"photos": len(records), "frames_in_manifest": len(manifest), "status": status}
    return write_outputs(out, manifest, failures, summary)
