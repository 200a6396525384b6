"""The small building blocks every ME-GraphAU stage shares: token-wise LinearBlock, single-head cross-attention and
the cosine AU classifier.

Initialisations follow the official code (He-normal with the *output* width as fan), so a model trained here from
scratch starts where the official one does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class LinearBlock(nn.Module):
    """Dropout -> Linear -> BatchNorm over channels -> ReLU on token sequences: (B, T, Cin) -> (B, T, Cout).

    The BatchNorm normalises each output channel over (batch, tokens), hence the transpose to (B, Cout, T).
    """

    def __init__(self, in_features: int, out_features: int, drop: float = 0.0) -> None:
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(in_features, out_features)
        self.bn = nn.BatchNorm1d(out_features)
        nn.init.normal_(self.fc.weight, 0.0, math.sqrt(2.0 / out_features))

    def forward(self, x: Tensor) -> Tensor:
        x = self.fc(self.drop(x))  # (B, T, Cout)
        x = self.bn(x.transpose(1, 2)).transpose(1, 2)
        return F.relu(x)


class CrossAttention(nn.Module):
    """Single-head cross-attention with a half-width query/key space: queries attend over the context tokens.

    ``forward`` broadcasts leading dimensions, so one context (B, 1, T, C) can serve N queries (B, N, T, C).
    ``attend`` takes already projected q/k/v, which lets GEM project each node once instead of once per edge.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear_q = nn.Linear(dim, dim // 2)
        self.linear_k = nn.Linear(dim, dim // 2)
        self.linear_v = nn.Linear(dim, dim)
        self.scale = (dim // 2) ** -0.5
        nn.init.normal_(self.linear_q.weight, 0.0, math.sqrt(2.0 / (dim // 2)))
        nn.init.normal_(self.linear_k.weight, 0.0, math.sqrt(2.0 / (dim // 2)))
        nn.init.normal_(self.linear_v.weight, 0.0, math.sqrt(2.0 / dim))

    def attend(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q (..., Tq, C/2), k (..., Tk, C/2), v (..., Tk, C) -> (..., Tq, C); softmax over the context tokens."""
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)  # (..., Tq, Tk)
        return attn @ v

    def forward(self, query: Tensor, context: Tensor) -> Tensor:
        return self.attend(self.linear_q(query), self.linear_k(context), self.linear_v(context))


def au_cosine_scores(nodes: Tensor, sc: Tensor) -> Tensor:
    """AU scores (B, N) = cosine(relu(sc_i), node_i) for nodes (B, N, C) and per-AU vectors sc (N, C).

    Both vectors are non-negative, so the score lies in [0, 1] and is used directly as a probability (threshold
    0.5); there is no temperature, bias or sigmoid.
    """
    sc = F.normalize(F.relu(sc), p=2, dim=-1)  # (N, C)
    return (F.normalize(nodes, p=2, dim=-1) * sc).sum(dim=-1)
