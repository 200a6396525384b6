"""Pixel masks <-> ViT token masks.

The token grid has ``G = S // p`` cells per side, laid over the top-left ``G*p`` pixels (row-major, like
``PatchEmbed``'s flatten). Pixels beyond ``G*p`` belong to no token.
"""

from __future__ import annotations

import numpy as np

# The token grid of occau's standard encoders by crop side: the SynthFACS ViTs (8-px patches at 64 and 112 px) and
# ViT-B/16 at 224 px. Every consumer of a token grid (occlusion, training data, evaluation, the datasheet) asks
# ``standard_patch_size`` when no patch size is configured, so they cannot disagree.
STANDARD_PATCH_SIZES = {64: 8, 112: 8, 224: 16}


def standard_patch_size(size: int, patch_size: int | None = None) -> int:
    """``patch_size`` when given, else the standard grid's patch for a crop of side ``size`` (for other sides: 16
    when it divides the side, else 8)."""
    if patch_size:
        return int(patch_size)
    if size in STANDARD_PATCH_SIZES:
        return STANDARD_PATCH_SIZES[size]
    return 16 if size % 16 == 0 else 8


def token_coverage(pixel_mask: np.ndarray, patch_size: int) -> np.ndarray:
    """Fraction of each token cell that is covered: (S, S) bool -> (G*G,) float in [0, 1]."""
    if pixel_mask.ndim != 2 or pixel_mask.shape[0] != pixel_mask.shape[1]:
        raise ValueError(f"pixel_mask must be square (S, S), got shape {pixel_mask.shape}")
    if patch_size < 1 or patch_size > pixel_mask.shape[0]:
        raise ValueError(f"patch_size {patch_size} must be in 1..{pixel_mask.shape[0]} (the mask side)")
    g = pixel_mask.shape[0] // patch_size
    cells = pixel_mask[: g * patch_size, : g * patch_size].reshape(g, patch_size, g, patch_size)  # (G, p, G, p)
    return cells.mean(axis=(1, 3), dtype=np.float64).reshape(-1)  # (G*G,)


def token_mask_from_pixels(pixel_mask: np.ndarray, patch_size: int) -> np.ndarray:
    """(S, S) bool -> (G*G,) bool: a token is occluded when at least half of its cell is covered (PROTOCOL §2)."""
    return token_coverage(np.asarray(pixel_mask, dtype=bool), patch_size) >= 0.5


def pixels_from_token_mask(token_mask: np.ndarray, size: int, patch_size: int) -> np.ndarray:
    """(G*G,) bool -> (S, S) bool covering exactly the selected cells (margin beyond ``G*p`` left uncovered)."""
    g = size // patch_size
    if token_mask.shape != (g * g,):
        raise ValueError(f"token_mask must have shape ({g * g},) for size {size} and patch {patch_size}")
    cells = np.repeat(np.repeat(token_mask.reshape(g, g), patch_size, axis=0), patch_size, axis=1)  # (G*p, G*p)
    mask = np.zeros((size, size), dtype=bool)
    mask[: g * patch_size, : g * patch_size] = cells
    return mask
