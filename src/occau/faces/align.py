"""Similarity alignment of a face to the 5-point template (``occau.faces.template``).

A 4-degree-of-freedom transform (rotation, uniform scale, shift) keeps the face's proportions, so AU geometry is
not distorted; LMedS makes it tolerate one badly placed point (a mouth corner under a hand or mask).
"""

from __future__ import annotations

import cv2
import numpy as np

from occau.faces.template import template_points


def similarity_transform(landmarks5: np.ndarray, size: int = 224) -> np.ndarray | None:
    """Landmarks (5, 2) in source pixels -> 2x3 float64 matrix mapping source to crop pixels, or None if the points
    are degenerate."""
    src = np.asarray(landmarks5, dtype=np.float64).reshape(5, 2)
    if not np.isfinite(src).all():
        return None
    matrix, _ = cv2.estimateAffinePartial2D(src, template_points(size), method=cv2.LMEDS)
    if matrix is None or not np.isfinite(matrix).all() or abs(np.linalg.det(matrix[:, :2])) < 1e-12:
        return None
    return matrix


def warp_face(image: np.ndarray, matrix: np.ndarray, size: int = 224) -> np.ndarray:
    """Apply a 2x3 source -> crop matrix: (H, W, C) -> (size, size, C); outside the image is black."""
    flags = cv2.INTER_AREA if scale_of(matrix) < 1.0 else cv2.INTER_LINEAR
    return cv2.warpAffine(image, matrix, (size, size), flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def scale_of(matrix: np.ndarray) -> float:
    """The uniform scale of a similarity matrix (crop pixels per source pixel)."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(matrix)[:, :2]))))


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Map (K, 2) points with a 2x3 matrix."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    return pts @ matrix[:, :2].T + matrix[:, 2]


def align_face(image: np.ndarray, landmarks5: np.ndarray, size: int = 224) -> tuple[np.ndarray, np.ndarray] | None:
    """Crop a face aligned to the template: -> (crop (size, size, C), matrix (2, 3)), or None if degenerate."""
    matrix = similarity_transform(landmarks5, size)
    if matrix is None:
        return None
    return warp_face(image, matrix, size), matrix
