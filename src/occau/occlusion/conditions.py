"""The occlusion conditions of PROTOCOL §2 as a registry (name -> painter), and ``occlude`` that applies one.

Geometric conditions yield a pixel mask that is painted with a fill; realistic occluders (``mask``, ``sunglasses``,
``hand``) paint their own colours, so ``fill`` does not change them. Every random choice comes from
``sample_rng(seed, condition, sample_key)``: the same image key gets the same occlusion in every method and run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np

from occau.occlusion import regions, shapes
from occau.occlusion.fills import FILLS, fill_image
from occau.occlusion.seeding import sample_rng
from occau.occlusion.tokens import standard_patch_size, token_mask_from_pixels

RegionFn = Callable[[int, int, np.random.Generator], np.ndarray]  # (size, patch_size, rng) -> (S, S) bool
OccluderFn = Callable[[int, np.random.Generator], shapes.Layer]  # (size, rng) -> Layer

REGIONS: dict[str, RegionFn] = {
    "clean": regions.no_region,
    "patch25": partial(regions.random_cells, fraction=0.25),
    "patch50": partial(regions.random_cells, fraction=0.50),
    "patch75": partial(regions.random_cells, fraction=0.75),
    "square25": partial(regions.random_squares, fraction=0.25),
    "square50": partial(regions.random_squares, fraction=0.50),
    "upper": partial(regions.half, which="upper"),
    "lower": partial(regions.half, which="lower"),
    "left": partial(regions.half, which="left"),
    "right": partial(regions.half, which="right"),
    "center": regions.center_square,
    "eyes": regions.eyes_band,
    "mouth": regions.mouth_band,
}
OCCLUDERS: dict[str, OccluderFn] = {
    "mask": shapes.surgical_mask,
    "sunglasses": shapes.sunglasses,
    "hand": shapes.hand,
}
CONDITIONS: tuple[str, ...] = (*REGIONS, *OCCLUDERS)

# How reports show the conditions: "patch" is a curve over the occluded fraction (PATCH_RATIOS), the other groups are
# per-AU heatmaps. A new condition goes into REGIONS or OCCLUDERS and into one group here; tables and plots follow.
CONDITION_GROUPS: dict[str, tuple[str, ...]] = {
    "patch": ("clean", "patch25", "patch50", "patch75"),  # random token cells, by fraction
    "square": ("square25", "square50"),  # random squares of several cells, by covered fraction
    "block": ("upper", "lower", "left", "right", "center", "eyes", "mouth"),  # one fixed face region
    "occluder": ("mask", "sunglasses", "hand"),  # realistic objects with their own colours
}
PATCH_RATIOS: dict[str, int] = {"clean": 0, "patch25": 25, "patch50": 50, "patch75": 75}  # % of cells covered
_grouped = [c for group in CONDITION_GROUPS.values() for c in group]
assert sorted(_grouped) == sorted(CONDITIONS), "every condition must be in exactly one of CONDITION_GROUPS"
assert set(PATCH_RATIOS) == set(CONDITION_GROUPS["patch"]), "every patch condition needs its ratio"


@dataclass(frozen=True)
class OcclusionResult:
    image: np.ndarray  # (S, S, 3) uint8 RGB, occluded copy (input never modified)
    pixel_mask: np.ndarray  # (S, S) bool, True where covered
    token_mask: np.ndarray  # (G*G,) bool, True when >= half of token cell i is covered, G = S // patch_size


def _check_image(image: np.ndarray, patch_size: int | None) -> tuple[int, int]:
    """The crop side and the token grid's cell (``patch_size``, or the standard one for the side)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ValueError(f"occlude expects an (S, S, 3) uint8 RGB face crop, got {got}")
    size = image.shape[0]
    if image.shape[1] != size:
        raise ValueError(f"occlude expects a square aligned crop, got {image.shape[:2]}")
    patch_size = standard_patch_size(size, patch_size)
    if not 1 <= patch_size <= size:
        raise ValueError(f"patch_size {patch_size} must be in 1..{size} (the crop side)")
    return size, patch_size


def occlude(
    image: np.ndarray,
    condition: str,
    *,
    sample_key: str,
    seed: int = 0,
    patch_size: int | None = None,
    fill: str = "black",
    mean_color: tuple[int, int, int] | None = None,
) -> OcclusionResult:
    """Apply one protocol condition to an aligned (S, S, 3) uint8 crop, deterministically per (seed, key).

    ``patch_size`` is the token grid's cell (None: the standard grid of the crop size, ``standard_patch_size``)."""
    size, patch_size = _check_image(image, patch_size)
    if fill not in FILLS:
        raise ValueError(f"unknown fill {fill!r}; known: {FILLS}")
    geometry = sample_rng(seed, condition, sample_key, "geometry")
    if condition in REGIONS:
        pixel_mask = REGIONS[condition](size, patch_size, geometry)  # (S, S) bool
        out = image.copy()
        if pixel_mask.any():
            canvas = fill_image(fill, size, sample_rng(seed, condition, sample_key, f"fill:{fill}"), mean_color)
            out[pixel_mask] = canvas[pixel_mask]
    elif condition in OCCLUDERS:
        layer = OCCLUDERS[condition](size, geometry)
        out, pixel_mask = layer.composite(image), layer.footprint
    else:
        raise ValueError(f"unknown occlusion condition {condition!r}; known: {CONDITIONS}")
    return OcclusionResult(out, pixel_mask, token_mask_from_pixels(pixel_mask, patch_size))
