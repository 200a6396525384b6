"""Geometric occlusion conditions: functions ``(size, patch_size, rng) -> (S, S) bool`` pixel masks.

Bands and halves are fixed regions of the aligned crop (``occau.faces.template`` puts the eyes at y ~0.47 S and the
mouth at y ~0.76 S); patches and squares are random and draw from ``rng`` only.
"""

from __future__ import annotations

import math

import numpy as np

from occau.faces.template import EYE_LINE_Y, MOUTH_LINE_Y
from occau.occlusion.tokens import pixels_from_token_mask

BAND_HALF_HEIGHT = 0.12  # eyes / mouth bands: feature line +- 0.12 S (PROTOCOL §2)


def no_region(size: int, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    return np.zeros((size, size), dtype=bool)


def random_cells(size: int, patch_size: int, rng: np.random.Generator, *, fraction: float) -> np.ndarray:
    """``round(fraction * N)`` token cells chosen uniformly without replacement (halves round up)."""
    g = size // patch_size
    n_cover = math.floor(fraction * g * g + 0.5)
    token_mask = np.zeros(g * g, dtype=bool)
    token_mask[rng.choice(g * g, size=n_cover, replace=False)] = True
    return pixels_from_token_mask(token_mask, size, patch_size)


def random_squares(size: int, patch_size: int, rng: np.random.Generator, *, fraction: float) -> np.ndarray:
    """Squares of side p/2 .. 2p anywhere (not grid-aligned) until ``fraction`` of the pixels is covered.

    The last square is shrunk (top-left corner fixed) to the smallest side that reaches the target, so the coverage
    overshoots by at most one square's rim instead of a whole 2p x 2p square (25% of a 64-px crop).
    """
    mask = np.zeros((size, size), dtype=bool)
    target = math.ceil(fraction * size * size)
    lo, hi = max(1, patch_size // 2), min(2 * patch_size, size)
    covered = 0
    while covered < target:
        side = int(rng.integers(lo, hi + 1))
        y, x = (int(v) for v in rng.integers(0, size - side + 1, size=2))
        new = np.cumsum(np.cumsum(~mask[y : y + side, x : x + side], axis=0), axis=1)  # new pixels per sub-square
        gains = new[np.arange(side), np.arange(side)]  # gains[k]: newly covered pixels if the side were k + 1
        if covered + gains[-1] > target:
            side = max(lo, int(np.searchsorted(gains, target - covered)) + 1)
        mask[y : y + side, x : x + side] = True
        covered += int(gains[side - 1])
    return mask


def half(size: int, patch_size: int, rng: np.random.Generator, *, which: str) -> np.ndarray:
    """upper / lower / left / right half; for odd S the extra row or column goes to lower / right."""
    mask = np.zeros((size, size), dtype=bool)
    h = size // 2
    region = {
        "upper": (slice(0, h), slice(None)),
        "lower": (slice(h, None), slice(None)),
        "left": (slice(None), slice(0, h)),
        "right": (slice(None), slice(h, None)),
    }[which]
    mask[region] = True
    return mask


def center_square(size: int, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    """A centred square of side S/2."""
    mask = np.zeros((size, size), dtype=bool)
    side = size // 2
    start = (size - side) // 2
    mask[start : start + side, start : start + side] = True
    return mask


def horizontal_band(size: int, patch_size: int, rng: np.random.Generator, *, center_y: float) -> np.ndarray:
    """Full-width rows whose centres lie within ``center_y +- BAND_HALF_HEIGHT`` (normalised)."""
    rows = (np.arange(size) + 0.5) / size
    mask = np.zeros((size, size), dtype=bool)
    mask[np.abs(rows - center_y) <= BAND_HALF_HEIGHT] = True
    return mask


def eyes_band(size: int, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    return horizontal_band(size, patch_size, rng, center_y=EYE_LINE_Y)


def mouth_band(size: int, patch_size: int, rng: np.random.Generator) -> np.ndarray:
    return horizontal_band(size, patch_size, rng, center_y=MOUTH_LINE_Y)
