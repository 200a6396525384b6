"""The one sample format every dataset in occau yields, real or synthetic.

Images stay uint8 RGB aligned crops until the model transform, so occlusion (which paints pixels) and face
preparation work on the same arrays for every source.
"""

from __future__ import annotations

from typing import TypedDict

import numpy as np


class FaceSample(TypedDict):
    image: np.ndarray  # (S, S, 3) uint8 RGB, aligned to occau.faces.template
    labels: np.ndarray  # (N,) float32 in {0, 1}; 0 where unknown
    label_mask: np.ndarray  # (N,) bool, True where the label is known (BP4D code 9 -> False)
    intensity: np.ndarray  # (N,) float32 FACS intensity 0..5, NaN where not coded
    subject: str
    sequence: str
    frame: int
