"""The 5-point alignment template every face crop in occau is aligned to.

It is the ArcFace 112-px template shrunk by ``ZOOM`` about the crop centre so that brows (AU1/2/4) and chin (AU17)
stay inside the crop. Points are normalised to [0, 1]; multiply by the crop side ``S``. SynthFACS draws its faces
on the same template, so occlusion bands (eyes, mouth) fall on the same features in real and synthetic crops.
"""

from __future__ import annotations

import numpy as np

ARCFACE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
ZOOM = 0.8

# image-left eye, image-right eye, nose tip, image-left mouth corner, image-right mouth corner
FIVE_POINTS: np.ndarray = 0.5 + (ARCFACE_112 / 112.0 - 0.5) * ZOOM

EYE_LINE_Y: float = float(FIVE_POINTS[:2, 1].mean())  # ~0.469
NOSE_TIP_Y: float = float(FIVE_POINTS[2, 1])  # ~0.612
MOUTH_LINE_Y: float = float(FIVE_POINTS[3:, 1].mean())  # ~0.759


def template_points(size: int) -> np.ndarray:
    """The template in pixels of a ``size`` x ``size`` crop, shape (5, 2) as (x, y)."""
    return FIVE_POINTS * size
