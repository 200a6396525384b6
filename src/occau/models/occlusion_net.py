"""A learnt estimate of what covers a face: a small U-Net from an aligned crop to a per-pixel "covered" map.

Why a separate small network rather than a head on the MAE encoder: the estimate must run before the encoder (the
encoder is fed only the tokens judged visible), so a head on the encoder's tokens would cost a second, full encoder
pass per face: 46 ms for ViT-S/16 and 176 ms for ViT-B/16 at 224 px on 2 CPU cores (docs/benchmarks/detect_speed.md),
against a budget of 10 ms per face. A U-Net at a fixed working size (112 px) is
a few ms, sees the whole face at its bottom (7 x 7 cells for 112 px), which is the context that tells a scarf from a
beard, and keeps the edges sharp enough to score each token.

Why pixels, then tokens: the truth the protocol scores on is per token (covered when at least half of its cell is,
``occlusion.tokens``), and the encoder's token grid depends on the model (8-px cells at 64 px, 16-px at 224). A
pixel map serves every grid: the mean probability over a cell is the expected covered share of that cell, and a
token is judged covered when it reaches the same one half (``token_coverage``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class OcclusionNetConfig:
    input_size: int = 112  # every crop is resized to this side first (any crop size works)
    width: int = 16  # channels of the first level; each level down doubles them (capped at 8x)
    levels: int = 4  # down-sampling steps: 112 px -> 7 x 7 at the bottom
    output_stride: int = 4  # the logit map is input_size / output_stride per side (28 x 28 for 112 px)
    threshold: float = 0.5  # a token is covered when its mean probability reaches this (training chooses it)


OCCLUSION_NET_CONFIGS: dict[str, OcclusionNetConfig] = {
    "unet_w16": OcclusionNetConfig(width=16),
    "unet_w8": OcclusionNetConfig(width=8),
    "unet_w24": OcclusionNetConfig(width=24),
}


def _conv_block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    """3x3 conv (strided when going down), BN, ReLU, then a 3x3 conv, BN, ReLU."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
    )


class OcclusionNet(nn.Module):
    """Aligned crops (B, 3, S, S), normalised like every occau model -> logits (B, 1, S', S'), S' = input/stride."""

    def __init__(self, config: OcclusionNetConfig = OcclusionNetConfig()) -> None:
        super().__init__()
        self.config = config
        stride = config.output_stride
        if config.input_size % (2**config.levels) or stride & (stride - 1) or not 2 <= stride <= 2**config.levels:
            raise ValueError(f"input_size {config.input_size} must divide by 2**levels ({2**config.levels}) and "
                             f"output_stride {stride} must be a power of two from 2 up to it")
        widths = [config.width * min(2**i, 8) for i in range(config.levels)]  # e.g. 16, 32, 64, 128
        self.down = nn.ModuleList(
            _conv_block(c_in, c_out, 2) for c_in, c_out in zip([3, *widths[:-1]], widths)
        )
        kept = stride.bit_length() - 1  # how many levels up the decoder climbs: from the bottom to the output stride
        ups = list(range(config.levels - 2, kept - 2, -1))  # skip levels joined on the way up
        self.up = nn.ModuleList(_conv_block(widths[i + 1] + widths[i], widths[i], 1) for i in ups)
        self.skip_levels = ups
        self.head = nn.Conv2d(widths[ups[-1]] if ups else widths[-1], 1, 1)

    def forward(self, images: Tensor) -> Tensor:
        size = self.config.input_size
        x = images
        if x.shape[-1] != size or x.shape[-2] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        skips = []
        for block in self.down:
            x = block(x)
            skips.append(x)  # level i: (B, widths[i], size / 2**(i+1), ...)
        for block, level in zip(self.up, self.skip_levels):
            skip = skips[level]
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)  # (B, 1, size / output_stride, ...)

    def covered_share(self, images: Tensor, patch_size: int) -> Tensor:
        """(B, 3, S, S) -> (B, G*G) expected covered share of each token cell, G = S // patch_size (row-major)."""
        size = images.shape[-1]
        grid = size // patch_size
        probs = torch.sigmoid(self(images).float())  # (B, 1, s, s)
        probs = F.interpolate(probs, size=(size, size), mode="bilinear", align_corners=False)  # (B, 1, S, S)
        cells = probs[..., : grid * patch_size, : grid * patch_size]
        return F.avg_pool2d(cells, patch_size).flatten(1)  # (B, G*G)

    @torch.no_grad()
    def token_mask(self, images: Tensor, patch_size: int) -> Tensor:
        """(B, 3, S, S) -> (B, G*G) bool, True = token judged covered (the protocol's at-least-half rule)."""
        return self.covered_share(images, patch_size) >= self.config.threshold
