"""``FaceJob``: one aligned face on its way from the frame to the model, and from the model to the CSV and the
overlay. Its own module so that the detector and the overlay both read it without importing each other."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from occau.inference.inputs import Frame
from occau.inference.tracking import TrackedFace


@dataclass
class FaceJob:
    """One aligned face waiting for the model."""

    frame: Frame
    face: TrackedFace
    matrix: np.ndarray  # (2, 3) source -> crop pixels
    crop: np.ndarray  # (S, S, 3) uint8 RGB
    covered: np.ndarray  # (S, S) bool, True = covered
    occlusion: str  # "mask" | "none" | "auto" | "learnt" | "colour": where ``covered`` came from (plus
    # out-of-picture pixels); an estimate is added in batches just before the model runs
    row: dict[str, Any] = field(default_factory=dict)
