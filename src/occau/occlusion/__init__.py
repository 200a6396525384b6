"""Occlusion conditions of the evaluation protocol, as test-time transforms and training augmentation.

``occlude(image, condition, sample_key=..., seed=...)`` applies one condition of PROTOCOL §2 to an aligned crop and
returns the occluded copy, its pixel mask and its ViT token mask; ``RandomOcclusion`` draws weighted mixtures of
conditions and fills for training. ``OCCLUDER_KINDS`` holds many more occluder kinds, split into training, held-out
and protocol kinds, for training and judging a learnt estimate of what is covered.
"""

from occau.occlusion.augment import RandomOcclusion
from occau.occlusion.conditions import (CONDITION_GROUPS, CONDITIONS, OCCLUDERS, PATCH_RATIOS, REGIONS,
                                       OcclusionResult, occlude)
from occau.occlusion.fills import FILLS
from occau.occlusion.occluder_kinds import (HELD_OUT_KINDS, OCCLUDER_KINDS, PROTOCOL_KINDS, TRAINING_KINDS, paste,
                                            random_occluder)
from occau.occlusion.seeding import sample_rng
from occau.occlusion.tokens import token_coverage, token_mask_from_pixels

__all__ = [
    "CONDITION_GROUPS",
    "CONDITIONS",
    "FILLS",
    "HELD_OUT_KINDS",
    "OCCLUDER_KINDS",
    "OCCLUDERS",
    "REGIONS",
    "OcclusionResult",
    "PATCH_RATIOS",
    "PROTOCOL_KINDS",
    "RandomOcclusion",
    "TRAINING_KINDS",
    "occlude",
    "paste",
    "random_occluder",
    "sample_rng",
    "token_coverage",
    "token_mask_from_pixels",
]
