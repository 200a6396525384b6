"""What every AU model in occau returns, so teacher, student and baselines are interchangeable downstream."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class AUOutput:
    """AU predictions plus the graph representation that knowledge distillation matches.

    ``probs`` are ME-GraphAU's cosine scores in [0, 1], used directly as probabilities (threshold 0.5); they are not
    logits. Edge index ``e = j * N + k`` pairs end node ``j`` with start node ``k`` (self-pairs included).
    """

    probs: Tensor  # (B, N)
    node_features: Tensor | None = None  # (B, N, C): the gated GCN's output nodes (ANFL: its GCN output)
    edge_features: Tensor | None = None  # (B, N*N, C): the gated GCN's output edges (MEFL only)
    edge_logits: Tensor | None = None  # (B, N*N, 4): co-occurrence states {neither, k only, j only, both}
    node_inputs: Tensor | None = None  # (B, N, C): the node features the graph reads (ME-GraphAU's f_v)
    edge_inputs: Tensor | None = None  # (B, N*N, C): the edge features the graph reads (GEM's f_e; MEFL only)
