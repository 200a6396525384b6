"""Where a method's occlusion mask comes from when nobody marked what is covered: the unknown-occlusion axis.

Every benchmark figure before this axis told the method exactly which tokens are covered (``given``: the protocol's
own mask). A user of ``occau detect`` has no such mask, so the same methods are also scored with the mask
estimated from the occluded picture itself:

- ``colour``: the colour heuristic (``occau.occlusion.colour_estimate``);
- ``learnt``: the occlusion estimator (``occau.models.occlusion_net``), by default the one shipped with occau;
- ``none``: no mask at all: every token is seen, the occluder included.

An estimate maps normalised crops (B, 3, S, S), as every occau model takes them, to (B, G*G) bool token masks
(True = judged covered), so it slots in wherever a given mask would.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

MASK_SOURCES: tuple[str, ...] = ("given", "colour", "learnt", "none")
ESTIMATES: tuple[str, ...] = MASK_SOURCES[1:]  # the ones computed from the picture

TokenEstimate = Callable[[Tensor, int], Tensor]  # (normalised crops (B, 3, S, S), patch size) -> (B, G*G) bool


def colour_estimate(images: Tensor, patch_size: int) -> Tensor:
    from occau.data.transforms import to_uint8_image
    from occau.occlusion.colour_estimate import estimate_token_mask

    crops = to_uint8_image(images.float()).cpu().numpy()  # (B, S, S, 3)
    masks = np.stack([estimate_token_mask(crop, patch_size) for crop in crops])  # (B, L)
    return torch.from_numpy(masks).to(images.device)


def no_estimate(images: Tensor, patch_size: int) -> Tensor:
    grid = images.shape[-1] // patch_size
    return torch.zeros(images.shape[0], grid * grid, dtype=torch.bool, device=images.device)


class LearntEstimate:
    """The occlusion estimator as a :data:`TokenEstimate` (loaded once; runs on the images' device)."""

    def __init__(self, checkpoint: str | Path | None = None) -> None:
        from occau.checkpoints.occlusion import load_occlusion_net
        from occau.checkpoints.shipped import OCCLUSION_ESTIMATOR, shipped_weights

        self.checkpoint = Path(checkpoint) if checkpoint else shipped_weights(OCCLUSION_ESTIMATOR)
        self.net, self.meta = load_occlusion_net(self.checkpoint)

    @torch.inference_mode()
    def __call__(self, images: Tensor, patch_size: int) -> Tensor:
        self.net.to(images.device)
        return self.net.token_mask(images.float(), patch_size)


def open_estimate(name: str, checkpoint: str | Path | None = None) -> TokenEstimate:
    """The estimate called ``name`` (:data:`ESTIMATES`); ``checkpoint`` chooses the learnt estimator's weights."""
    if name == "colour":
        return colour_estimate
    if name == "learnt":
        return LearntEstimate(checkpoint)
    if name == "none":
        return no_estimate
    raise ValueError(f"unknown occlusion estimate {name!r}; known: {ESTIMATES}")
