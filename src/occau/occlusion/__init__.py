"""Occlusion conditions of the evaluation protocol, as test-time transforms and training augmentation.

``occlude(image, condition, sample_key=..., seed=...)`` applies one condition of PROTOCOL §2 to an aligned crop and
returns the occluded copy, its pixel mask and its ViT token mask; ``RandomOcclusion`` draws weighted mixtures of
conditions and fills for training.
"""

from occau.occlusion.augment import RandomOcclusion
from occau.occlusion.conditions import (CONDITION_GROUPS, CONDITIONS, OCCLUDERS, PATCH_RATIOS, REGIONS,
                                       OcclusionResult, occlude)
from occau.occlusion.fills import FILLS
from occau.occlusion.seeding import sample_rng
from occau.occlusion.tokens import token_coverage, token_mask_from_pixels

__all__ = [
    "CONDITION_GROUPS",
    "CONDITIONS",
    "FILLS",
    "OCCLUDERS",
    "REGIONS",
    "OcclusionResult",
    "PATCH_RATIOS",
    "RandomOcclusion",
    "occlude",
    "sample_rng",
    "token_coverage",
    "token_mask_from_pixels",
]
