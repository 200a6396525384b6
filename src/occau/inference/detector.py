"""``Detector``: AU probabilities, presence and per-AU visibility for every face in images and videos.

Per frame: detect faces (yuface, MTCNN fallback) -> in video, keep face ids and reuse the last good face for a few
frames when detection fails (with ``detect_every > 1``, run the detector only every few frames and follow the
landmarks by optical flow in between: ``occau.inference.tracking``) -> align each face to the training template ->
decide which pixels of the crop are covered (a user mask, the colour estimate, and always the parts of the crop
outside the picture) -> token mask -> MAE encoder on the visible tokens only -> student head. Faces are batched
across frames; rows are written to the CSV as soon as their batch is done, so a crash loses only the batch in
flight (``occau.inference.batches``). ``progress=True`` shows frames done / total, the ETA and faces per second on
stderr (``occau.inference.progress``). The model runs behind one small interface, ``StudentRunner``
(``occau.inference.runners``: PyTorch or ONNX Runtime, chosen once by ``runtime``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch

from occau.aus import AU_REGIONS, au_name
from occau.data.images import MAX_PIXELS, InputError
from occau.data.transforms import IMAGENET_MEAN, IMAGENET_STD, to_model_input
from occau.evaluation.occlusion_estimates import TokenEstimate, open_estimate
from occau.faces.align import similarity_transform, transform_points, warp_face
from occau.faces.face_detector import FaceDetection, FaceDetector
from occau.inference.batches import FaceBatches
from occau.inference.face_job import FaceJob
from occau.inference.inputs import Frame, MaskLookup, Source, expand_inputs, iter_frames
from occau.inference.overlay import OverlaySink
from occau.inference.progress import Progress
from occau.inference.runners import StudentRunner, TorchStudentRunner, open_runner
from occau.inference.tracking import FaceTracker, TrackedFace
from occau.inference.writer import FAILURE_COLUMNS, LazyRowWriter, RowWriter, failures_path, result_columns
from occau.models.mae import MaskedAutoencoderViT
from occau.occlusion.tokens import pixels_from_token_mask, token_mask_from_pixels

OCCLUSION_MODES = ("none", "auto", "learnt", "colour")
AUTO_ESTIMATE = "learnt"  # what --occlusion auto runs: the estimate that measured best (docs/detect.md)


@dataclass
class StageTimes:
    """Seconds spent per stage, summed over a run (the speed benchmark divides by ``faces``)."""

    decode: float = 0.0
    detection: float = 0.0
    tracking: float = 0.0  # optical flow and face ids (most of it with --detect-every > 1)
    alignment: float = 0.0  # similarity transform, warp, user-mask warp
    occlusion: float = 0.0  # the occlusion estimate (``--occlusion auto | learnt | colour``)
    encoder: float = 0.0  # with --runtime onnx: encoder and head, one graph
    head: float = 0.0  # with --runtime onnx: 0
    frames: int = 0
    faces: int = 0

    def as_dict(self) -> dict[str, float]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def region_slices(aus: Sequence[int], size: int) -> dict[int, tuple[slice, slice]]:
    """Pixel rows/cols of each AU's region (``occau.aus.AU_REGIONS``) in an S x S crop."""
    out = {}
    for au in aus:
        x0, y0, x1, y1 = AU_REGIONS[au]
        out[au] = (slice(math.floor(y0 * size), math.ceil(y1 * size)), slice(math.floor(x0 * size), math.ceil(x1 * size)))
    return out


def outside_picture(matrix: np.ndarray, image_shape: tuple[int, int], size: int) -> np.ndarray:
    """(S, S) bool: crop pixels whose source lies outside the picture (the warp fills them with black)."""
    inverse = cv2.invertAffineTransform(matrix)
    ys, xs = np.mgrid[0:size, 0:size]
    src = transform_points(np.stack([xs.ravel(), ys.ravel()], axis=1).astype(np.float64), inverse)  # (S*S, 2)
    h, w = image_shape
    inside = (src[:, 0] >= -0.5) & (src[:, 0] <= w - 0.5) & (src[:, 1] >= -0.5) & (src[:, 1] <= h - 0.5)
    return ~inside.reshape(size, size)


class Detector:
    """AU recognition on real pictures of partly covered faces, from a student bundle (``load_student``), or with
    ``runtime="onnx"`` from its ONNX export (``occau export onnx``; CPU and fp32 only).

    ``occlusion``: ``"none"`` (only crop pixels outside the picture count as covered), ``"learnt"`` (the occlusion
    estimator, ``estimator`` or the shipped one), ``"colour"`` (the colour heuristic), ``"auto"`` (whichever measured
    best: :data:`AUTO_ESTIMATE`); a user mask, where given to ``detect``, always wins.
    """

    def __init__(self, checkpoint: str | Path, device: str = "auto", runtime: str = "torch",
                 precision: str = "fp32", **options: Any) -> None:
        runner = open_runner(checkpoint, runtime, device, precision)
        self._setup(runner, checkpoint=str(checkpoint), precision=precision, **options)

    @classmethod
    def from_modules(cls, encoder: MaskedAutoencoderViT, student: torch.nn.Module, meta: Mapping[str, Any],
                     device: str = "auto", precision: str = "fp32", **options: Any) -> Detector:
        """A detector from models in memory (benchmarks); ``meta`` needs ``aus`` (and may give normalisation)."""
        self = cls.__new__(cls)
        runner = TorchStudentRunner(encoder, student, dict(meta), device, precision)
        self._setup(runner, checkpoint="<memory>", precision=precision, **options)
        return self

    def _setup(self, runner: StudentRunner, checkpoint: str, threshold: float = 0.5, occlusion: str = "none",
               precision: str = "fp32", backends: tuple[str, ...] | None = None, min_face_score: float = 0.5,
               max_gap: int = 15, max_pixels: int = MAX_PIXELS, face_detector: FaceDetector | None = None,
               estimator: str | Path | None = None) -> None:
        if occlusion not in OCCLUSION_MODES:
            raise ValueError(f"occlusion must be one of {OCCLUSION_MODES}, got {occlusion!r}")
        self.estimator, self._estimates = estimator, {}
        if occlusion != "none":
            self._estimate(occlusion)  # a missing or wrong estimator file fails here, before any input is read
        self.runner, self.device, self.checkpoint = runner, runner.device, checkpoint
        meta = self.meta = runner.meta
        self.aus = [int(a) for a in meta["aus"]]
        if len(self.aus) != runner.num_aus:
            raise ValueError(f"{checkpoint}: meta lists {len(self.aus)} AUs but the student predicts "
                             f"{runner.num_aus}")
        self.size, self.patch = runner.size, runner.patch
        norm = meta.get("normalization") or {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}
        self.mean = torch.tensor(norm["mean"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(norm["std"], dtype=torch.float32, device=self.device).view(1, 3, 1, 1)
        self.threshold, self.occlusion, self.precision = threshold, occlusion, precision
        self.max_gap, self.max_pixels = max_gap, max_pixels
        self.face_detector = face_detector or FaceDetector(backends, min_score=min_face_score)
        self.regions = region_slices(self.aus, self.size)
        self.columns = result_columns(self.aus)
        self.times = StageTimes()

    # ------------------------------------------------------------------ the model
    @torch.inference_mode()
    def predict(self, crops: np.ndarray, token_mask: np.ndarray) -> np.ndarray:
        """Aligned uint8 RGB crops (B, S, S, 3) and token masks (B, L) bool (True = covered) -> probs (B, N).

        The encoder sees only the visible tokens, so pixels under covered tokens cannot change the result. The only
        place a model runs (``self.runner``); the ONNX runtime counts encoder and head together as ``encoder``.
        """
        t0 = time.perf_counter()
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device).permute(0, 3, 1, 2).float().div_(255.0)
        x = (x - self.mean) / self.std  # (B, 3, S, S)
        mask = torch.from_numpy(np.asarray(token_mask, dtype=bool)).to(self.device)  # (B, L)
        probs, head = self.runner.run(x, mask)  # (B, N)
        self.times.encoder += time.perf_counter() - t0 - head
        self.times.head += head
        return probs

    # ------------------------------------------------------------------ one frame
    def _find_faces(self, frame: Frame) -> list[FaceDetection]:
        """The face detector on one frame (timed: it costs about as much as the model)."""
        t0 = time.perf_counter()
        found = self.face_detector.detect(frame.image)
        self.times.detection += time.perf_counter() - t0
        return found

    def _detect_faces(self, frame: Frame, tracker: FaceTracker | None) -> list[TrackedFace]:
        """Faces of one frame: a picture always runs the detector; in a video the tracker decides whether it runs
        (``detect_every``) and gives the ids."""
        if tracker is None:
            return [TrackedFace(i, d, False) for i, d in enumerate(self._find_faces(frame))]
        t0, detecting = time.perf_counter(), self.times.detection
        faces = tracker.step(frame.index, frame.image, lambda: self._find_faces(frame))
        self.times.tracking += time.perf_counter() - t0 - (self.times.detection - detecting)
        return faces

    def _align(self, frame: Frame, face: TrackedFace, mode: str) -> FaceJob | None:
        t0 = time.perf_counter()
        matrix = similarity_transform(face.detection.landmarks5, self.size)
        if matrix is None:
            return None
        crop = cv2.cvtColor(warp_face(frame.image, matrix, self.size), cv2.COLOR_BGR2RGB)
        covered = outside_picture(matrix, frame.image.shape[:2], self.size)
        if frame.mask is not None:
            warped = cv2.warpAffine(frame.mask.astype(np.uint8) * 255, matrix, (self.size, self.size),
                                    flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
            covered |= warped >= 128
        self.times.alignment += time.perf_counter() - t0
        return FaceJob(frame, face, matrix, crop, covered, mode)

    def _estimate(self, mode: str) -> TokenEstimate:
        """The occlusion estimate of ``mode`` (``auto`` -> :data:`AUTO_ESTIMATE`), opened once."""
        name = AUTO_ESTIMATE if mode == "auto" else mode
        if name not in self._estimates:
            self._estimates[name] = open_estimate(name, self.estimator if name == "learnt" else None)
        return self._estimates[name]

    def _estimate_cover(self, jobs: list[FaceJob]) -> None:
        """Add what the estimate judges covered to each job's cover, one batch per estimate (faces with a user mask
        are left alone: ``mask`` mode)."""
        t0 = time.perf_counter()
        for mode in {j.occlusion for j in jobs} - {"none", "mask"}:
            chosen = [j for j in jobs if j.occlusion == mode]
            images = to_model_input(np.stack([j.crop for j in chosen])).to(self.device)  # (B, 3, S, S)
            judged = self._estimate(mode)(images, self.patch).cpu().numpy()  # (B, L)
            for job, tokens in zip(chosen, judged):
                job.covered = job.covered | pixels_from_token_mask(tokens, self.size, self.patch)
        self.times.occlusion += time.perf_counter() - t0

    def _row(self, job: FaceJob, probs: np.ndarray, token_mask: np.ndarray) -> dict[str, Any]:
        f, d = job.frame, job.face.detection
        x0, y0, x1, y1 = (float(v) for v in d.box)
        row: dict[str, Any] = {
            "input": f.source, "frame": f.index, "timestamp": f.timestamp, "face_id": job.face.face_id,
            "FaceRectX": x0, "FaceRectY": y0, "FaceRectWidth": x1 - x0, "FaceRectHeight": y1 - y0,
            "FaceScore": float("nan") if job.face.tracked else d.score,
        }
        for i, (x, y) in enumerate(d.landmarks5):
            row[f"x_{i}"], row[f"y_{i}"] = float(x), float(y)
        for au, p in zip(self.aus, probs):
            row[au_name(au)] = float(p)
            row[f"{au_name(au)}_c"] = int(p >= self.threshold)
        for au, (rows, cols) in self.regions.items():
            row[f"{au_name(au)}_visible"] = float(1.0 - job.covered[rows, cols].mean())
        row.update(visible_fraction=float(1.0 - job.covered.mean()), tokens_visible=int((~token_mask).sum()),
                   occlusion=job.occlusion, detector=d.detector, tracked=int(job.face.tracked))
        return row

    def _run_batch(self, jobs: list[FaceJob], batch_size: int) -> None:
        for start in range(0, len(jobs), batch_size):
            chunk = jobs[start : start + batch_size]
            self._estimate_cover(chunk)
            masks = np.stack([token_mask_from_pixels(j.covered, self.patch) for j in chunk])  # (B, L)
            probs = self.predict(np.stack([j.crop for j in chunk]), masks)
            for job, p, m in zip(chunk, probs, masks):
                job.row = self._row(job, p, m)

    # ------------------------------------------------------------------ inputs
    def detect(
        self,
        inputs: str | Path | np.ndarray | Sequence[str | Path | np.ndarray],
        batch_size: int = 16,
        skip_frames: int = 0,
        occlusion: str | None = None,
        masks: str | Path | Mapping[str, str | Path] | None = None,
        out: str | Path | None = None,
        overlay_dir: str | Path | None = None,
        log: Callable[[str], None] | None = None,
        detect_every: int = 1,
        progress: bool = False,
        overlap: bool | None = None,
    ) -> pd.DataFrame:
        """Rows for every face of every frame of ``inputs`` (files, folders, globs, videos, RGB arrays).

        ``out``: CSV written row by row, inputs that fail go to ``<out stem>.failures.csv``. Failures are also in
        ``df.attrs["failures"]`` as ``(input, frame, reason)``. ``skip_frames``: in videos, process one frame then
        skip this many. ``overlay_dir``: pictures (``<name>_overlay.png``, ``.mp4`` and ``_aus.png`` for videos).
        ``detect_every``: in videos, run the face detector on every ``detect_every``-th processed frame (and
        wherever the optical flow loses a face) and follow the landmarks by optical flow in between; 1 runs it on
        every frame. ``progress``: a progress bar on stderr (frames, ETA, faces/s). ``overlap``: run the model
        on one batch in a second thread while the next frames are decoded, detected and aligned (rows keep their
        order; at most one batch is in flight). ``None`` overlaps when the model runs on a GPU, where the CPU would
        otherwise wait for it; on a CPU torch already keeps every core busy and overlapping measured no faster
        (docs/detect.md).
        """
        mode = self.occlusion if occlusion is None else occlusion
        if mode not in OCCLUSION_MODES:
            raise ValueError(f"occlusion must be one of {OCCLUSION_MODES}, got {mode!r}")
        if batch_size < 1 or skip_frames < 0 or detect_every < 1:
            raise ValueError(f"batch_size and detect_every must be >= 1 and skip_frames >= 0, got {batch_size}, "
                             f"{detect_every}, {skip_frames}")
        if isinstance(inputs, (str, Path, np.ndarray)):
            inputs = [inputs]
        if overlap is None:
            overlap = self.device.type != "cpu"
        log = log or (lambda msg: None)
        sources, bad = expand_inputs(inputs)
        lookup = MaskLookup(masks, sources)
        rows: list[dict[str, Any]] = []
        failures: list[tuple[str, Any, str]] = []
        writer = RowWriter(out, self.columns) if out else None
        fail_writer = None
        if out:
            failures_path(out).unlink(missing_ok=True)  # a stale list from an earlier run would mislead
            fail_writer = LazyRowWriter(failures_path(out), FAILURE_COLUMNS)

        def fail(name: str, frame: Any, reason: str) -> None:
            failures.append((name, frame, reason))
            log(f"FAILED {reason}")
            if fail_writer is not None:
                fail_writer.write({"input": name, "frame": frame, "reason": reason})

        def emit(row: dict[str, Any]) -> None:
            rows.append(row)
            if writer is not None:
                writer.write(row)

        bar = Progress(sources, skip_frames, progress)  # the ``finally`` below closes it
        log = bar.wrap(log)  # ``fail`` looks ``log`` up when it runs, so it writes around the bar too
        try:
            for name, reason in bad:
                fail(name, "", f"{name}: {reason}")
            for source, expected in zip(sources, bar.counts):
                start = len(rows)
                bar.begin()
                try:
                    frames = self._run_source(source, lookup.find(source), mode, batch_size, skip_frames,
                                              overlay_dir, emit, detect_every, bar, overlap)
                    log(f"{source.name}: {frames} frame(s), {len(rows) - start} face row(s)")
                except InputError as err:
                    fail(source.name, getattr(err, "frame", ""), str(err))
                except Exception as err:  # noqa: BLE001 - one bad input must not stop the others; the reason is kept
                    fail(source.name, "", f"{source.name}: {err.__class__.__name__}: {err}")
                bar.end(expected)
        finally:
            bar.close()
            if writer is not None:
                writer.close()
            if fail_writer is not None:
                fail_writer.close()
        df = pd.DataFrame(rows, columns=self.columns)
        df.attrs["failures"] = failures
        df.attrs["checkpoint"] = self.checkpoint
        return df

    def _run_source(self, source: Source, mask: Path | None, mode: str, batch_size: int, skip_frames: int,
                    overlay_dir: str | Path | None, emit: Callable[[dict[str, Any]], None], detect_every: int = 1,
                    bar: Progress | None = None, overlap: bool = True) -> int:
        """Process one input; returns its frame count. Raises ``InputError`` when it yields no face."""
        mode = "mask" if mask is not None else mode
        tracker = FaceTracker(self.max_gap, detect_every=detect_every) if source.kind == "video" else None
        sink = OverlaySink.for_source(source, overlay_dir, self.aus, self.threshold) if overlay_dir else None
        frames = faces = 0

        def deliver(frame: Frame, jobs: list[FaceJob]) -> None:
            for job in jobs:
                emit(job.row)
            if sink is not None:
                sink.add(frame, jobs)

        batches = FaceBatches(lambda jobs: self._run_batch(jobs, batch_size), deliver, batch_size, overlap)
        try:
            stream = iter_frames(source, skip_frames, mask, self.max_pixels)
            while True:
                t0 = time.perf_counter()
                frame = next(stream, None)
                self.times.decode += time.perf_counter() - t0
                if frame is None:
                    break
                jobs = [j for f in self._detect_faces(frame, tracker) if (j := self._align(frame, f, mode))]
                if sink is None:
                    frame.image = frame.mask = None  # only the crops are needed from here on
                frames, faces = frames + 1, faces + len(jobs)
                self.times.frames += 1
                self.times.faces += len(jobs)
                if bar is not None:
                    bar.frame(len(jobs))
                batches.add(frame, jobs)
        finally:
            try:
                batches.close()  # whatever was read before an error is still written
            finally:
                if sink is not None:
                    sink.close()
        if faces == 0:
            raise InputError(f"{source.name}: no face found in {frames} frame(s)")
        return frames
