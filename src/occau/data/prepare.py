"""From a provider's BP4D/DISFA download to aligned face crops plus a manifest (``occau prepare``).

Work is split by sequence (a BP4D task, a DISFA video) and run on a process pool. Every finished frame is made
durable at once: its crop is written to a temporary file and renamed, then one line is appended to the sequence's
journal (``work/<subject>__<sequence>.part.jsonl``, renamed to ``.jsonl`` when the sequence is complete). A rerun
reads the journals back and only does what is missing, so an interrupted run loses at most the frame in flight.
The manifest is assembled from the journals and the labels once every sequence is done.

Frames without a face: ``no_face="neighbour"`` reuses the transform of the previous frame with a face in the same
sequence (the first face's transform for frames before it); ``"skip"`` leaves them out. Both are listed in
``failures.tsv``.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue as queue_mod
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from occau.aus import dataset_aus
from occau.data.layout import CROPS_DIR, FAILURES_FILE, FORMAT_VERSION, INFO_FILE, MANIFEST_FILE, SUMMARY_FILE, WORK_DIR
from occau.faces.template import FIVE_POINTS, ZOOM

# Nothing here imports torch at module level: spawned pool workers import this module, and only need OpenCV.
if TYPE_CHECKING:
    from occau.data.prepared import SequenceLabels

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
NO_FACE_POLICIES = ("neighbour", "skip")
# Options that decide what the crops are; a resumed run must use the same ones.
DEFINING = ("dataset", "size", "image_format", "jpeg_quality", "aligned", "no_face", "backends", "min_score")


class PrepareError(RuntimeError):
    """Bad input found while preparing (the message names the file)."""


@dataclass(frozen=True)
class PrepareConfig:
    dataset: str  # "bp4d" or "disfa"
    root: Path  # the provider's download (AUCoding/, ActionUnit_Labels/, Videos_LeftCamera/ ...)
    out: Path
    images: Path | None = None  # BP4D frames or (with aligned) existing crops; default: found under root
    lists: Path | None = None  # take labels from ME-GraphAU list files instead of the raw label files
    subjects: tuple[str, ...] | None = None  # default: all subjects of the dataset
    size: int = 224
    image_format: str = "jpg"
    jpeg_quality: int = 95
    aligned: bool = False  # inputs are already face crops: resize only, no detection
    no_face: str = "neighbour"
    backends: tuple[str, ...] | None = None  # default: every installed one, yuface first
    min_score: float = 0.5
    workers: int = 2
    progress: bool = True


@dataclass(frozen=True)
class Job:
    """One sequence to prepare; picklable for the process pool."""

    subject: str
    sequence: str
    frames: tuple[int, ...]
    kind: str  # "bp4d-images", "disfa-video", "crops"
    source: str  # folder of frame images, or the video file


@dataclass
class PrepareResult:
    out: Path
    frames: int = 0  # crops in the manifest
    sequences: int = 0
    processed: int = 0  # frames worked on in this run (less than all on a resume)
    summary: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------------------------------- inputs


def _find_images(config: PrepareConfig, subject: str) -> Path:
    root = Path(config.root)
    candidates = [config.images] if config.images else [root / "BP4D-training", root / "images", root / "img", root]
    for c in candidates:
        if c is not None and (Path(c) / subject).is_dir():
            return Path(c)
    tried = ", ".join(str(c) for c in candidates)
    raise PrepareError(f"no frame folder for {subject}: looked for <dir>/{subject}/ in {tried} (use --images)")


def read_labels(config: PrepareConfig) -> list[SequenceLabels]:
    """Labels of every sequence to prepare, from the raw files or from ME-GraphAU lists."""
    from occau.data import bp4d, disfa
    from occau.data.megraphau_lists import import_lists

    try:
        if config.lists is not None:
            seqs = import_lists(config.lists, config.dataset)
            if config.subjects is not None:
                seqs = [s for s in seqs if s.subject in config.subjects]
            return seqs
        reader = {"bp4d": bp4d.read_labels, "disfa": disfa.read_labels}[config.dataset]
        return reader(config.root, config.subjects)
    except (FileNotFoundError, ValueError) as e:
        raise PrepareError(str(e)) from e


def make_jobs(config: PrepareConfig, sequences: list[SequenceLabels]) -> list[Job]:
    from occau.data import disfa

    jobs = []
    for seq in sequences:
        frames = tuple(int(f) for f in seq.frames)
        if config.aligned or config.dataset == "bp4d":
            source = _find_images(config, seq.subject) / seq.subject
            source = source / seq.sequence if config.dataset == "bp4d" else source
            if not source.is_dir():
                raise PrepareError(f"{source}: frame folder for {seq.subject}/{seq.sequence} is missing")
            kind = "crops" if config.aligned else "bp4d-images"
            jobs.append(Job(seq.subject, seq.sequence, frames, kind, str(source)))
        else:
            video = disfa.video_path(config.root, seq.subject)
            if not video.is_file():
                raise PrepareError(f"{video}: DISFA left-camera video is missing")
            jobs.append(Job(seq.subject, seq.sequence, frames, "disfa-video", str(video)))
    return jobs


def _image_files(folder: Path) -> dict[int, Path]:
    if not folder.is_dir():
        raise PrepareError(f"{folder}: frame folder is missing")
    return {int(p.stem): p for p in folder.iterdir() if p.stem.isdigit() and p.suffix.lower() in IMAGE_SUFFIXES}


def iter_frames(job: Job, wanted: set[int]) -> Iterator[tuple[int, np.ndarray | None]]:
    """(frame, BGR image or None if its file is missing) for the wanted frames, in the job's frame order."""
    if job.kind == "disfa-video":
        yield from _iter_video(Path(job.source), wanted, len(job.frames))
        return
    files = _image_files(Path(job.source))
    for frame in job.frames:
        if frame in wanted:
            path = files.get(frame)
            image = None if path is None else cv2.imread(str(path), cv2.IMREAD_COLOR)
            if path is not None and image is None:
                raise PrepareError(f"{path}: cannot be decoded as an image")
            yield frame, image


def _iter_video(path: Path, wanted: set[int], n_labels: int) -> Iterator[tuple[int, np.ndarray | None]]:
    """Decode a DISFA video in order; frame t goes with label line t. Frames not wanted are grabbed, not decoded."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise PrepareError(f"{path}: cannot open the video (missing codec or damaged file)")
    try:
        last = max(wanted) if wanted else -1
        for t in range(last + 1):
            ok = cap.read() if t in wanted else (cap.grab(), None)
            if not ok[0]:
                raise PrepareError(
                    f"{path}: video ends after {t} frames but its labels have {n_labels} lines (truncated video?)"
                )
            if t in wanted:
                yield t, ok[1]
    finally:
        cap.release()


# --------------------------------------------------------------------------------------------------- one sequence


def _key(job: Job) -> str:
    return f"{job.subject}__{job.sequence}"


def _crop_rel(config: PrepareConfig, job: Job, frame: int) -> str:
    return f"{CROPS_DIR}/{job.subject}/{job.sequence}/{frame}.{config.image_format}"


def _write_crop(config: PrepareConfig, rel: str, crop: np.ndarray) -> str:
    """Encode, write atomically, return the SHA-256 of the file."""
    ext = "." + config.image_format
    params = [cv2.IMWRITE_JPEG_QUALITY, config.jpeg_quality] if config.image_format == "jpg" else []
    ok, buf = cv2.imencode(ext, crop, params)
    if not ok:
        raise PrepareError(f"could not encode {rel}")
    data = buf.tobytes()
    path = Path(config.out) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return hashlib.sha256(data).hexdigest()


def _load_journal(config: PrepareConfig, path: Path) -> dict[int, dict]:
    """Finished frames of an interrupted sequence; drops a torn last line and records whose crop is gone."""
    done: dict[int, dict] = {}
    if not path.is_file():
        return done
    for line in path.read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            break  # torn write at the moment of interruption
        if rec.get("image") and not (Path(config.out) / rec["image"]).is_file():
            continue
        done[rec["frame"]] = rec
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in done.values()))
    os.replace(tmp, path)  # rewrite without the torn tail so appends stay valid JSON lines
    return done


def _record(
    frame: int,
    status: str,
    image: str | None = None,
    sha: str | None = None,
    det=None,
    matrix: np.ndarray | None = None,
    transform_from: int | None = None,
    reason: str | None = None,
) -> dict:
    return {
        "frame": frame,
        "status": status,
        "image": image,
        "sha256": sha,
        "detector": None if det is None else det.detector,
        "score": None if det is None else round(float(det.score), 4),
        "box": None if det is None else np.round(det.box, 2).tolist(),
        "landmarks": None if det is None else np.round(det.landmarks5, 2).tolist(),
        "transform": None if matrix is None else np.asarray(matrix).round(6).tolist(),
        "transform_from": transform_from,
        "reason": reason,
    }


def _resize_matrix(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    return np.array([[size / w, 0.0, 0.0], [0.0, size / h, 0.0]])


def prepare_sequence(config: PrepareConfig, job: Job, progress: Callable[[int], None] | None = None) -> int:
    """Prepare one sequence, resuming from its journal; returns the number of frames processed now."""
    from occau.faces.align import similarity_transform, warp_face
    from occau.faces.face_detector import FaceDetector

    work = Path(config.out) / WORK_DIR
    final = work / f"{_key(job)}.jsonl"
    if final.is_file():
        return 0
    part = work / f"{_key(job)}.part.jsonl"
    done = _load_journal(config, part)
    detector = None if config.aligned else FaceDetector(config.backends, config.min_score)
    todo = {f for f in job.frames if f not in done}
    last_good: tuple[int, np.ndarray] | None = None  # (frame, matrix) of the latest face
    first_good: tuple[int, np.ndarray] | None = None
    pending: list[int] = []  # frames without a face before the sequence's first face
    n = 0
    with part.open("a") as journal:

        def log(rec: dict) -> None:
            journal.write(json.dumps(rec) + "\n")
            journal.flush()

        def emit(frame: int, image: np.ndarray, matrix: np.ndarray, status: str, det=None, src=None) -> None:
            rel = _crop_rel(config, job, frame)
            crop = (
                cv2.resize(image, (config.size,) * 2, interpolation=cv2.INTER_AREA)
                if status == "aligned-input"
                else warp_face(image, matrix, config.size)
            )
            log(_record(frame, status, rel, _write_crop(config, rel, crop), det, matrix, src))

        frames = iter_frames(job, todo)
        for frame in job.frames:
            if frame in done:  # keep the neighbour chain right across a resume
                rec = done[frame]
                if rec["status"] == "detected":
                    last_good = (frame, np.array(rec["transform"]))
                    first_good = first_good or last_good
                continue
            _, image = next(frames)
            n += 1
            if progress:
                progress(1)
            if image is None:
                log(_record(frame, "missing", reason=f"no image file for frame {frame} in {job.source}"))
                continue
            if config.aligned:
                emit(frame, image, _resize_matrix(image, config.size), "aligned-input")
                continue
            det = detector.detect_one(image)
            matrix = None if det is None else similarity_transform(det.landmarks5, config.size)
            if matrix is not None:
                emit(frame, image, matrix, "detected", det)
                last_good = (frame, matrix)
                first_good = first_good or last_good
            elif config.no_face == "neighbour" and last_good is not None:
                emit(frame, image, last_good[1], "reused", src=last_good[0])
            elif config.no_face == "neighbour":
                pending.append(frame)
            else:
                log(_record(frame, "skipped", reason="no face"))
        for frame, image in iter_frames(job, set(pending)) if pending else ():  # before the first face: its transform
            if first_good is None:
                log(_record(frame, "skipped", reason="no face in the whole sequence"))
            else:
                emit(frame, image, first_good[1], "reused", src=first_good[0])
        journal.flush()
        os.fsync(journal.fileno())
    os.replace(part, final)
    return n


def _worker_init() -> None:
    # The pool's workers already fill the cores. yuface's bundled libgomp reads OMP_NUM_THREADS when it loads,
    # which in a worker is after this (see occau.faces.face_detector for why one thread).
    os.environ["OMP_NUM_THREADS"] = "1"
    cv2.setNumThreads(1)


def _run_job(config: PrepareConfig, job: Job, q) -> int:
    return prepare_sequence(config, job, progress=lambda k: q.put(k))


# --------------------------------------------------------------------------------------------------- the whole run


def _info(config: PrepareConfig) -> dict:
    from occau import __version__
    from occau.faces.face_detector import available_backends

    return {
        "format": FORMAT_VERSION,
        "dataset": config.dataset,
        "aus": list(dataset_aus(config.dataset)),
        "size": config.size,
        "image_format": config.image_format,
        "jpeg_quality": config.jpeg_quality if config.image_format == "jpg" else None,
        "aligned": config.aligned,
        "no_face": config.no_face,
        "backends": None if config.aligned else list(config.backends or available_backends()),
        "min_score": config.min_score,
        "template": None if config.aligned else FIVE_POINTS.tolist(),
        "template_zoom": None if config.aligned else ZOOM,
        "label_source": "megraphau-lists" if config.lists else "raw",
        "frame_matching": "DISFA: video frame t (0-based) <-> label line t (frame index t+1)",
        "occau_version": __version__,
    }


def _check_config(config: PrepareConfig) -> None:
    if config.dataset not in ("bp4d", "disfa"):
        raise PrepareError(f"dataset must be bp4d or disfa, got {config.dataset!r}")
    if config.no_face not in NO_FACE_POLICIES:
        raise PrepareError(f"no_face must be one of {NO_FACE_POLICIES}, got {config.no_face!r}")
    if config.image_format not in ("jpg", "png"):
        raise PrepareError(f"image_format must be jpg or png, got {config.image_format!r}")
    unknown = [b for b in config.backends or () if b not in ("yuface", "mtcnn")]
    if unknown:
        raise PrepareError(f"unknown face detector(s) {unknown}; expected yuface and/or mtcnn")
    if config.size < 16:
        raise PrepareError(f"crop size {config.size} is too small")


def _start(config: PrepareConfig) -> None:
    """Write prepare.json, or check a resumed run uses the same defining options."""
    out = Path(config.out)
    (out / WORK_DIR).mkdir(parents=True, exist_ok=True)
    info, path = _info(config), out / INFO_FILE
    if path.is_file():
        old = json.loads(path.read_text())
        diff = {k: (old.get(k), info[k]) for k in DEFINING if old.get(k) != info[k]}
        if diff:
            raise PrepareError(
                f"{path}: {out} was prepared with other options {diff} (was, now); "
                "use the same options to resume or a new --out"
            )
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(info, indent=1) + "\n")
    os.replace(tmp, path)


def _run(config: PrepareConfig, jobs: list[Job], total: int) -> tuple[int, list[str]]:
    """Run the jobs; returns the frames processed and the errors of sequences that failed (the rest finish)."""
    from tqdm import tqdm

    errors: list[str] = []
    processed = 0
    bar = tqdm(total=total, unit="frame", desc=f"prepare {config.dataset}", disable=not config.progress)
    if config.workers <= 1:
        for job in jobs:
            try:
                processed += prepare_sequence(config, job, progress=bar.update)
            except PrepareError as e:
                errors.append(str(e))
        bar.close()
        return processed, errors
    # spawn, not fork: forking after OpenCV/OpenMP thread pools exist in the parent can deadlock the children
    ctx = get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(config.workers, ctx, initializer=_worker_init) as pool:
        q = manager.Queue()
        futures = {pool.submit(_run_job, config, job, q): job for job in jobs}
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            try:
                while True:
                    bar.update(q.get_nowait())
            except queue_mod.Empty:
                pass
            for fut in finished:
                exc = fut.exception()
                if isinstance(exc, PrepareError):
                    errors.append(str(exc))
                elif exc is not None:
                    job = futures[fut]
                    raise RuntimeError(f"preparing {job.subject}/{job.sequence} from {job.source} failed") from exc
                else:
                    processed += fut.result()
    bar.close()
    return processed, errors


def _finish(config: PrepareConfig, sequences: list[SequenceLabels]) -> dict:
    """Join journals with labels into manifest.jsonl, failures.tsv and summary.json (each written atomically)."""
    from occau.data.statistics import label_counts

    out = Path(config.out)
    manifest, failures = [], ["subject\tsequence\tframe\tstatus\taction\n"]
    status_counts: dict[str, int] = {}
    detectors: dict[str, int] = {}
    kept_labels, kept_mask = [], []
    for seq in sequences:
        journal = out / WORK_DIR / f"{seq.subject}__{seq.sequence}.jsonl"
        recs = {r["frame"]: r for r in map(json.loads, journal.read_text().splitlines())}
        for i, frame in enumerate(int(f) for f in seq.frames):
            r = recs[frame]
            status_counts[r["status"]] = status_counts.get(r["status"], 0) + 1
            if r["detector"]:
                detectors[r["detector"]] = detectors.get(r["detector"], 0) + 1
            if r["status"] in ("reused", "skipped", "missing"):
                action = {
                    "reused": f"reused transform of frame {r['transform_from']}",
                    "skipped": f"skipped ({r['reason']})",
                    "missing": f"skipped ({r['reason']})",
                }[r["status"]]
                failures.append(f"{seq.subject}\t{seq.sequence}\t{frame}\t{r['status']}\t{action}\n")
            if r["image"] is None:
                continue
            inten = seq.intensity[i]
            manifest.append(
                {
                    "subject": seq.subject,
                    "sequence": seq.sequence,
                    "frame": frame,
                    "image": r["image"],
                    "labels": seq.labels[i].tolist(),
                    "mask": seq.mask[i].astype(int).tolist(),
                    "intensity": [None if np.isnan(v) else float(v) for v in inten],
                    **{
                        k: r[k]
                        for k in (
                            "status",
                            "detector",
                            "score",
                            "box",
                            "landmarks",
                            "transform",
                            "transform_from",
                            "sha256",
                        )
                    },
                }
            )
            kept_labels.append(seq.labels[i])
            kept_mask.append(seq.mask[i])
    aus = dataset_aus(config.dataset)
    all_labels = np.concatenate([s.labels for s in sequences])
    all_mask = np.concatenate([s.mask for s in sequences])
    summary = {
        "frames_labelled": int(all_labels.shape[0]),
        "frames_in_manifest": len(manifest),
        "status": status_counts,
        "detector": detectors,
        "labels_all_frames": label_counts(all_labels, all_mask, aus).as_dict(),
        "unknown_labels": int((~all_mask).sum()),
        "labels_in_manifest": label_counts(
            np.array(kept_labels).reshape(-1, len(aus)), np.array(kept_mask).reshape(-1, len(aus)), aus
        ).as_dict(),
    }
    return write_outputs(out, manifest, failures, summary)


def write_outputs(out: Path, manifest: list[dict], failures: list[str], summary: dict) -> dict:
    """The manifest, failures and summary of a prepared folder, each replaced atomically; returns the summary."""
    _atomic_text(out / MANIFEST_FILE, "".join(json.dumps(r) + "\n" for r in manifest))
    _atomic_text(out / FAILURES_FILE, "".join(failures))
    _atomic_text(out / SUMMARY_FILE, json.dumps(summary, indent=1) + "\n")
    return summary


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def prepare(config: PrepareConfig) -> PrepareResult:
    """Run (or resume) the whole preparation. Raises PrepareError naming the bad file on bad input; sequences
    finished before the error stay finished."""
    _check_config(config)
    sequences = read_labels(config)  # label errors surface before any image work
    if not sequences:
        raise PrepareError(f"no labelled sequences found for {config.dataset} under {config.root}")
    jobs = make_jobs(config, sequences)
    _start(config)
    remaining = [j for j in jobs if not (Path(config.out) / WORK_DIR / f"{_key(j)}.jsonl").is_file()]
    total = sum(len(j.frames) for j in remaining)
    processed, errors = _run(config, remaining, total)
    if errors:
        raise PrepareError(
            f"{len(errors)} sequence(s) failed; finished work is kept in {config.out}, fix the input and rerun:\n  "
            + "\n  ".join(errors)
        )
    summary = _finish(config, sequences)
    return PrepareResult(Path(config.out), summary["frames_in_manifest"], len(sequences), processed, summary)


def config_dict(config: PrepareConfig) -> dict:
    return {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
