"""``--occlusion auto``: guess which tokens of an aligned face crop are covered, from colour alone.

Why colour: the student bundles carry only the MAE encoder (no decoder, so no reconstruction error), and the
detectors' landmark confidences say little (FACE_FRONTEND.md §2.2: points stay plausible under masks and hands).
What does hold on real occluders (masks, sunglasses, scarves, microphones, black bars) is that they are not the
colour of this face's skin. So:

1. A map of where the template expects bare skin (``skin_prior``): the face ellipse from just above the brows to the
   chin, minus eyes, brows and mouth. Hair over the forehead is above it and so never counts as occlusion.
2. This face's skin colour: the median CIELab colour of the expected-skin pixels that pass a loose generic skin
   gate in YCrCb (all expected-skin pixels if too few pass, e.g. grey-scale video).
3. A pixel is skin-like when its chroma is within ``chroma_tol`` of that colour and its lightness within a factor
   ``light_ratio`` (shadows darken skin; they do not change its chroma much).
4. A token is covered when it should be partly skin (prior >= ``min_prior``) but less than ``keep`` of the skin it
   should show is skin-like; tokens that are not expected to be skin (eyes, mouth) are covered when most of their
   4-neighbours are, which fills the lenses of sunglasses and the mouth under a mask.

Known blind spot: a skin-coloured occluder (a hand of the same tone) is not found; pass a mask for those.
The measured precision and recall are in docs/detect.md (``benchmarks/detect_occlusion.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from occau.faces.template import EYE_LINE_Y, FIVE_POINTS, MOUTH_LINE_Y
from occau.occlusion.tokens import pixels_from_token_mask, token_coverage


@dataclass(frozen=True)
class ColourOcclusionConfig:
    chroma_tol: float = 14.0  # CIELab a/b distance (OpenCV 8-bit units) still counted as this face's skin
    light_ratio: float = 2.2  # lightness within [ref / r, ref * r] counts as skin (shadows, highlights)
    min_prior: float = 0.3  # tokens at least this much expected skin are judged on their own
    keep: float = 0.5  # ... and covered when less than this share of their expected skin looks like skin
    neighbours: int = 3  # other tokens are covered when at least this many of their 4 neighbours are
    min_gate_fraction: float = 0.05  # below this share of gate-passing pixels, the reference uses all skin pixels


@lru_cache(maxsize=8)
def skin_prior(size: int) -> np.ndarray:
    """(S, S) float32 in {0, 1}: where the template expects bare skin. Cached per crop size."""
    s = float(size)
    prior = np.zeros((size, size), dtype=np.uint8)
    centre = (round(0.5 * s), round(0.60 * s))
    cv2.ellipse(prior, centre, (round(0.31 * s), round(0.37 * s)), 0, 0, 360, 1, -1)
    prior[: round((EYE_LINE_Y - 0.16) * s)] = 0  # above the brows: hair, hats and fringes are not occluders
    for eye in FIVE_POINTS[:2]:
        cx, cy = (round(v * s) for v in eye)
        cv2.ellipse(prior, (cx, cy), (round(0.075 * s), round(0.035 * s)), 0, 0, 360, 0, -1)  # eye
        cv2.ellipse(prior, (cx, round(cy - 0.075 * s)), (round(0.085 * s), round(0.025 * s)), 0, 0, 360, 0, -1)  # brow
    mouth = FIVE_POINTS[3:].mean(axis=0)
    cv2.ellipse(prior, (round(mouth[0] * s), round(MOUTH_LINE_Y * s)), (round(0.13 * s), round(0.05 * s)),
                0, 0, 360, 0, -1)
    return prior.astype(np.float32)


def skin_reference(lab: np.ndarray, ycrcb: np.ndarray, prior: np.ndarray, cfg: ColourOcclusionConfig) -> np.ndarray:
    """(3,) median Lab of the expected-skin pixels that look like skin to a generic YCrCb gate."""
    region = prior > 0
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    gate = region & (cr >= 133) & (cr <= 180) & (cb >= 77) & (cb <= 135)
    chosen = gate if gate.sum() >= cfg.min_gate_fraction * region.sum() else region
    return np.median(lab[chosen].reshape(-1, 3), axis=0).astype(np.float32)


def skin_like(crop_rgb: np.ndarray, cfg: ColourOcclusionConfig = ColourOcclusionConfig()) -> np.ndarray:
    """(S, S, 3) uint8 RGB aligned crop -> (S, S) bool: pixels of this face's skin colour."""
    blurred = cv2.GaussianBlur(crop_rgb, (0, 0), max(0.5, crop_rgb.shape[0] / 224))
    lab = cv2.cvtColor(blurred, cv2.COLOR_RGB2LAB).astype(np.float32)  # (S, S, 3)
    ycrcb = cv2.cvtColor(blurred, cv2.COLOR_RGB2YCrCb)
    ref = skin_reference(lab, ycrcb, skin_prior(crop_rgb.shape[0]), cfg)
    chroma = np.hypot(lab[..., 1] - ref[1], lab[..., 2] - ref[2])
    light = (lab[..., 0] + 1.0) / (ref[0] + 1.0)
    return (chroma <= cfg.chroma_tol) & (light >= 1.0 / cfg.light_ratio) & (light <= cfg.light_ratio)


def estimate_token_mask(crop_rgb: np.ndarray, patch_size: int,
                        cfg: ColourOcclusionConfig = ColourOcclusionConfig()) -> np.ndarray:
    """(S, S, 3) uint8 RGB aligned crop -> (G*G,) bool, True = token judged covered."""
    size = crop_rgb.shape[0]
    prior = skin_prior(size)
    expected = token_coverage(prior > 0, patch_size)  # (L,) share of each cell expected to be skin
    seen = token_coverage(skin_like(crop_rgb, cfg) & (prior > 0), patch_size)  # (L,)
    judged = expected >= cfg.min_prior
    covered = judged & (seen < cfg.keep * expected)
    g = size // patch_size
    grid = np.pad(covered.reshape(g, g), 1).astype(np.int32)  # (G+2, G+2)
    votes = grid[:-2, 1:-1] + grid[2:, 1:-1] + grid[1:-1, :-2] + grid[1:-1, 2:]  # (G, G) covered 4-neighbours
    inside = expected > 0  # only fill holes inside the face
    return covered | (~judged & inside & (votes.reshape(-1) >= cfg.neighbours))


def estimate_pixel_mask(crop_rgb: np.ndarray, patch_size: int,
                        cfg: ColourOcclusionConfig = ColourOcclusionConfig()) -> np.ndarray:
    """The token estimate as an (S, S) bool pixel mask (whole cells)."""
    return pixels_from_token_mask(estimate_token_mask(crop_rgb, patch_size, cfg), crop_rgb.shape[0], patch_size)
