"""Real, public-domain face photographs that installed packages ship, aligned by occau's own front end.

Why: a model trained and selected only on SynthFACS renders can fit SynthFACS's palette and shading at the expense of
real skin, and nothing on SynthFACS would show it. The few real faces every occau install already has (no download,
no licence question) are real faces to select the occlusion estimator on (the astronaut) and to score it on (Grace
Hopper), kept apart.

- ``astronaut``: Eileen Collins, NASA portrait (public domain), shipped by scikit-image as ``data.astronaut()``.
- ``grace_hopper``: Rear Admiral Grace Hopper, US Navy portrait (public domain), shipped by matplotlib as
  ``sample_data/grace_hopper.jpg``.
- ``cameraman``: a man filming, grey scale, face in profile (CC0, Lav Varshney), shipped by scikit-image as
  ``data.camera()``. His camera and gloved hand cover part of the face: that box (:data:`COVERED_BOXES`, drawn by
  hand on the photograph) is left out when an estimate is scored on him, since nobody painted it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np


def _astronaut_rgb() -> np.ndarray:
    from skimage import data

    return data.astronaut()


def _grace_hopper_rgb() -> np.ndarray:
    import matplotlib.cbook
    from PIL import Image

    with matplotlib.cbook.get_sample_data("grace_hopper.jpg") as f:
        return np.asarray(Image.open(f).convert("RGB"))


def _cameraman_rgb() -> np.ndarray:
    from skimage import data

    return np.repeat(data.camera()[..., None], 3, axis=2)


PUBLIC_PHOTOS: dict[str, Callable[[], np.ndarray]] = {
    "astronaut": _astronaut_rgb,
    "grace_hopper": _grace_hopper_rgb,
    "cameraman": _cameraman_rgb,
}
# Real occluders already in a photograph: (x0, y0, x1, y1) in its pixels.
COVERED_BOXES: dict[str, tuple[int, int, int, int]] = {"cameraman": (248, 128, 336, 236)}  # camera and glove


def aligned_photo(name: str, size: int) -> np.ndarray:
    """(size, size, 3) uint8 RGB crop of the photo's face, aligned to the 5-point template like every occau crop."""
    return _aligned(name, size)[0]


def covered_in_photo(name: str, size: int) -> np.ndarray:
    """(size, size) bool: where the aligned crop shows a real occluder of the photograph (:data:`COVERED_BOXES`)."""
    return _aligned(name, size)[1]


@lru_cache(maxsize=16)
def _aligned(name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    from occau.faces.align import align_face
    from occau.faces.face_detector import FaceDetector

    if name not in PUBLIC_PHOTOS:
        raise ValueError(f"unknown photo {name!r}; known: {sorted(PUBLIC_PHOTOS)}")
    bgr = cv2.cvtColor(PUBLIC_PHOTOS[name](), cv2.COLOR_RGB2BGR)
    face = FaceDetector().detect_one(bgr)
    aligned = None if face is None else align_face(bgr, face.landmarks5, size)
    if aligned is None:
        raise RuntimeError(f"photo {name!r}: the face detector found no face to align")
    crop, matrix = cv2.cvtColor(aligned[0], cv2.COLOR_BGR2RGB), aligned[1]
    box = np.zeros(bgr.shape[:2], dtype=np.uint8)
    if name in COVERED_BOXES:
        x0, y0, x1, y1 = COVERED_BOXES[name]
        box[y0:y1, x0:x1] = 255
    covered = cv2.warpAffine(box, matrix, (size, size), flags=cv2.INTER_NEAREST) > 0
    for array in (crop, covered):
        array.setflags(write=False)  # shared by the cache: callers copy before painting
    return crop, covered
