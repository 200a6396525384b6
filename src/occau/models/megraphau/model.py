"""ME-GraphAU (MEFARG, Luo et al. IJCAI 2022): the AU teacher whose graph representation the student distils.

backbone tokens (B, T, Cin) -> global_linear (B, T, C) -> AFG: one LinearBlock per AU, f_u (B, N, T, C), and node
features f_v = mean over tokens (B, N, C) -> stage 1 (ANFL): FGG top-K GCN on the nodes; stage 2 (MEFL): GEM edge
features f_e (B, N*N, C) and a 2-layer gated GCN on (nodes, edges) -> cosine AU scores, plus 4-way co-occurrence
logits per edge in stage 2.

The state_dict keys equal the official ones (``backbone.*``, ``global_linear.*``, ``head.*``), with timm names for
Swin backbones; foreign checkpoints go through ``occau.checkpoints.megraphau``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..outputs import AUOutput
from .backbones import BACKBONES, create_backbone
from .blocks import LinearBlock, au_cosine_scores
from .graph import FGG, GEM, METRICS, GatedGCN


@dataclass(frozen=True)
class MEGraphAUConfig:
    """Everything that fixes the architecture (and so the state_dict shapes) of a ME-GraphAU model."""

    backbone: str = "resnet50"
    num_aus: int = 12
    stage: int = 2  # 1 = ANFL (FGG head), 2 = MEFL (GEM + gated GCN head)
    neighbor_num: int = 4  # K of the stage-1 top-K graph (4 for BP4D, 3 for DISFA); unused by stage 2
    metric: str = "dots"  # stage-1 similarity
    img_size: int = 224

    def __post_init__(self) -> None:
        if self.backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {self.backbone!r}; expected one of {sorted(BACKBONES)}")
        if self.stage not in (1, 2):
            raise ValueError(f"stage must be 1 (ANFL) or 2 (MEFL), got {self.stage}")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; expected one of {METRICS}")
        if not 1 <= self.neighbor_num <= self.num_aus:
            raise ValueError(f"neighbor_num must be in [1, num_aus={self.num_aus}], got {self.neighbor_num}")
        if self.img_size % 32:
            raise ValueError(f"img_size must be a multiple of 32 (backbone stride), got {self.img_size}")

    @property
    def in_channels(self) -> int:
        return BACKBONES[self.backbone].in_channels

    @property
    def node_dim(self) -> int:
        return BACKBONES[self.backbone].node_dim

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# The official settings (config/*.yaml: 12 AUs with K=4 on BP4D, 8 AUs with K=3 on DISFA), plus a small one.
MEGRAPHAU_CONFIGS: dict[str, MEGraphAUConfig] = {
    "resnet50_bp4d": MEGraphAUConfig("resnet50", num_aus=12, neighbor_num=4),
    "resnet50_disfa": MEGraphAUConfig("resnet50", num_aus=8, neighbor_num=3),
    "swin_base_bp4d": MEGraphAUConfig("swin_transformer_base", num_aus=12, neighbor_num=4),
    "swin_base_disfa": MEGraphAUConfig("swin_transformer_base", num_aus=8, neighbor_num=3),
    "resnet18": MEGraphAUConfig("resnet18", num_aus=12, neighbor_num=4),
}


@dataclass
class MEGraphAUFeatures:
    """All intermediate representations of one forward pass (candidate KD targets; tests compare them)."""

    tokens: Tensor  # (B, T, Cin) backbone output
    global_tokens: Tensor  # (B, T, C) global_linear output
    f_u: Tensor  # (B, N, T, C) per-AU maps (AFG)
    f_v: Tensor  # (B, N, C) node features before the graph
    nodes: Tensor  # (B, N, C) graph output nodes (FGG or gated GCN)
    probs: Tensor  # (B, N) cosine AU scores
    edge_maps: Tensor | None = None  # (B, N*N, T, C) GEM output before the token mean (stage 2)
    f_e: Tensor | None = None  # (B, N*N, C) GEM edge features (stage 2)
    edges: Tensor | None = None  # (B, N*N, C) gated GCN output edges (stage 2)
    edge_logits: Tensor | None = None  # (B, N*N, 4) (stage 2)

    def to_output(self) -> AUOutput:
        return AUOutput(
            probs=self.probs, node_features=self.nodes, edge_features=self.edges, edge_logits=self.edge_logits,
            node_inputs=self.f_v, edge_inputs=self.f_e,
        )


class _AUHead(nn.Module):
    """What both stages share: AFG (one LinearBlock per AU) and the cosine classifier ``sc``."""

    def __init__(self, dim: int, num_aus: int) -> None:
        super().__init__()
        self.class_linears = nn.ModuleList([LinearBlock(dim, dim) for _ in range(num_aus)])
        self.sc = nn.Parameter(torch.empty(num_aus, dim))
        nn.init.xavier_uniform_(self.sc)

    def afg(self, x: Tensor) -> Tensor:
        """Global tokens (B, T, C) -> per-AU maps f_u (B, N, T, C)."""
        return torch.stack([layer(x) for layer in self.class_linears], dim=1)


class ANFLHead(_AUHead):
    """Stage 1: AFG + FGG, keys ``sc``, ``class_linears.*``, ``gnn.{U,V,bnv}.*``."""

    def __init__(self, dim: int, num_aus: int, neighbor_num: int = 4, metric: str = "dots") -> None:
        super().__init__(dim, num_aus)
        self.gnn = FGG(dim, num_aus, neighbor_num, metric)

    def forward_intermediates(self, x: Tensor) -> dict[str, Tensor]:
        f_u = self.afg(x)  # (B, N, T, C)
        f_v = f_u.mean(dim=-2)  # (B, N, C)
        nodes = self.gnn(f_v)
        return {"f_u": f_u, "f_v": f_v, "nodes": nodes, "probs": au_cosine_scores(nodes, self.sc)}


class MEFLHead(_AUHead):
    """Stage 2: AFG + GEM + gated GCN + edge classifier, keys ``sc``, ``class_linears.*``, ``edge_extractor.*``,
    ``gnn.*``, ``edge_fc.*``."""

    def __init__(self, dim: int, num_aus: int) -> None:
        super().__init__(dim, num_aus)
        self.edge_extractor = GEM(dim, num_aus)
        self.gnn = GatedGCN(dim, num_aus, num_layers=2)
        self.edge_fc = nn.Linear(dim, 4)
        nn.init.xavier_uniform_(self.edge_fc.weight)

    def forward_intermediates(self, x: Tensor) -> dict[str, Tensor]:
        f_u = self.afg(x)  # (B, N, T, C)
        f_v = f_u.mean(dim=-2)  # (B, N, C)
        edge_maps = self.edge_extractor.edge_maps(f_u, x)  # (B, N*N, T, C)
        f_e = edge_maps.mean(dim=-2)  # (B, N*N, C)
        nodes, edges = self.gnn(f_v, f_e)
        return {
            "f_u": f_u,
            "f_v": f_v,
            "edge_maps": edge_maps,
            "f_e": f_e,
            "nodes": nodes,
            "edges": edges,
            "probs": au_cosine_scores(nodes, self.sc),
            "edge_logits": self.edge_fc(edges),
        }


class MEGraphAU(nn.Module):
    """ME-GraphAU / MEFARG: ``forward(images (B, 3, S, S)) -> AUOutput``; stage 1 has no edge outputs."""

    def __init__(self, config: MEGraphAUConfig = MEGraphAUConfig()) -> None:
        super().__init__()
        self.config = config
        c = config.node_dim
        self.backbone = create_backbone(config.backbone, config.img_size)
        self.global_linear = LinearBlock(config.in_channels, c)
        if config.stage == 1:
            self.head: ANFLHead | MEFLHead = ANFLHead(c, config.num_aus, config.neighbor_num, config.metric)
        else:
            self.head = MEFLHead(c, config.num_aus)

    def forward_features(self, images: Tensor) -> Tensor:
        """Images (B, 3, S, S) -> global tokens (B, T, C), the input of both heads."""
        return self.global_linear(self.backbone(images))

    def forward_intermediates(self, images: Tensor) -> MEGraphAUFeatures:
        """The full forward pass, keeping every intermediate representation (no hooks needed)."""
        tokens = self.backbone(images)  # (B, T, Cin)
        x = self.global_linear(tokens)  # (B, T, C)
        return MEGraphAUFeatures(tokens=tokens, global_tokens=x, **self.head.forward_intermediates(x))

    def forward(self, images: Tensor) -> AUOutput:
        return self.forward_intermediates(images).to_output()
