"""Backbones of ME-GraphAU, all returning row-major token maps (B, T, Cin) with no pooling and no classifier.

ResNets are torchvision modules (state_dict keys = torchvision's minus ``fc``), Swins are timm modules (timm key
names; ``occau.checkpoints.megraphau`` maps Microsoft's original names onto them). Weights are never downloaded:
ImageNet initialisations come from a user file through ``occau.checkpoints.megraphau.load_backbone_weights``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from timm.models.swin_transformer import SwinTransformer
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet


@dataclass(frozen=True)
class BackboneSpec:
    """Architecture of one backbone and the widths ME-GraphAU derives from it."""

    family: str  # "resnet" | "swin"
    in_channels: int  # Cin: width of the backbone tokens
    node_dim: int  # C: width of global_linear's output, of every node and edge (Cin//4 for ResNet, Cin//2 for Swin)
    arch: dict[str, Any] = field(default_factory=dict)
    imagenet_file: str = ""  # the file name the official code loads its ImageNet weights from


BACKBONES: dict[str, BackboneSpec] = {
    "resnet18": BackboneSpec("resnet", 512, 128, {"block": "basic", "layers": (2, 2, 2, 2)}, "resnet18-5c106cde.pth"),
    "resnet34": BackboneSpec("resnet", 512, 128, {"block": "basic", "layers": (3, 4, 6, 3)}, "resnet34-333f7ec4.pth"),
    "resnet50": BackboneSpec(
        "resnet", 2048, 512, {"block": "bottleneck", "layers": (3, 4, 6, 3)}, "resnet50-19c8e357.pth"
    ),
    "resnet101": BackboneSpec(
        "resnet", 2048, 512, {"block": "bottleneck", "layers": (3, 4, 23, 3)}, "resnet101-5d3b4d8f.pth"
    ),
    # drop_path_rate as in the official constructors (Microsoft's Swin defaults per size)
    "swin_transformer_tiny": BackboneSpec(
        "swin",
        768,
        384,
        {"embed_dim": 96, "depths": (2, 2, 6, 2), "num_heads": (3, 6, 12, 24), "drop_path_rate": 0.2},
        "swin_tiny_patch4_window7_224.pth",
    ),
    "swin_transformer_small": BackboneSpec(
        "swin",
        768,
        384,
        {"embed_dim": 96, "depths": (2, 2, 18, 2), "num_heads": (3, 6, 12, 24), "drop_path_rate": 0.3},
        "swin_small_patch4_window7_224.pth",
    ),
    "swin_transformer_base": BackboneSpec(
        "swin",
        1024,
        512,
        {"embed_dim": 128, "depths": (2, 2, 18, 2), "num_heads": (4, 8, 16, 32), "drop_path_rate": 0.5},
        "swin_base_patch4_window7_224.pth",
    ),
}


class ResNetTokens(ResNet):
    """torchvision ResNet truncated after layer4: (B, 3, S, S) -> (B, (S/32)^2, Cin)."""

    def __init__(self, block: str, layers: tuple[int, ...]) -> None:
        super().__init__(BasicBlock if block == "basic" else Bottleneck, list(layers))
        del self.avgpool, self.fc  # not part of ME-GraphAU: no pooling, no classifier, no `fc.*` keys

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))  # (B, Cin, H, W)
        return x.flatten(2).transpose(1, 2)  # (B, H*W, Cin), row-major


class SwinTokens(SwinTransformer):
    """timm Swin without classifier: (B, 3, S, S) -> (B, (S/32)^2, Cin) tokens after the final LayerNorm."""

    def __init__(self, img_size: int = 224, **arch: Any) -> None:
        super().__init__(img_size=img_size, patch_size=4, window_size=7, num_classes=0, global_pool="", **arch)

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x).flatten(1, 2)  # (B, H, W, Cin) -> (B, H*W, Cin)


def create_backbone(name: str, img_size: int = 224) -> nn.Module:
    """Randomly initialised backbone ``name`` (a key of ``BACKBONES``)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown ME-GraphAU backbone {name!r}; expected one of {sorted(BACKBONES)}")
    spec = BACKBONES[name]
    if spec.family == "resnet":
        return ResNetTokens(**spec.arch)
    return SwinTokens(img_size=img_size, **spec.arch)
