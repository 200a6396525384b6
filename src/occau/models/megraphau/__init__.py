"""The ME-GraphAU teacher (MEFARG): stage 1 ANFL and stage 2 MEFL, with official state_dict keys."""

from .backbones import BACKBONES, BackboneSpec, create_backbone
from .blocks import CrossAttention, LinearBlock, au_cosine_scores
from .graph import FGG, GEM, GatedGCN
from .model import MEGRAPHAU_CONFIGS, MEGraphAU, MEGraphAUConfig, MEGraphAUFeatures

__all__ = [
    "BACKBONES",
    "FGG",
    "GEM",
    "MEGRAPHAU_CONFIGS",
    "BackboneSpec",
    "CrossAttention",
    "GatedGCN",
    "LinearBlock",
    "MEGraphAU",
    "MEGraphAUConfig",
    "MEGraphAUFeatures",
    "au_cosine_scores",
    "create_backbone",
]
