"""ME-GraphAU's graph modules: FGG (stage 1), GEM and the gated GCN (stage 2).

Nodes are AUs (B, N, C). Edges are ordered AU pairs (B, N*N, C) with index ``e = j * N + k``: ``j = e // N`` is the
*end* node (row) and ``k = e % N`` the *start* node (column); self-pairs are included. The official code gathers
node features onto edges with (N*N, N) incidence matrices; here the same gathers are broadcasts of the (B, N, N, C)
view, so nothing device-bound or N-bound lives outside the parameters and the state_dict keys stay the official ones.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import CrossAttention

METRICS = ("dots", "cosine", "l1")


def pair_end(x: Tensor) -> Tensor:
    """Node features (B, N, C) -> edge features (B, N*N, C) holding the end node ``j = e // N``."""
    b, n, c = x.shape
    return x.unsqueeze(2).expand(b, n, n, c).reshape(b, n * n, c)


def pair_start(x: Tensor) -> Tensor:
    """Node features (B, N, C) -> edge features (B, N*N, C) holding the start node ``k = e % N``."""
    b, n, c = x.shape
    return x.unsqueeze(1).expand(b, n, n, c).reshape(b, n * n, c)


def topk_adjacency(nodes: Tensor, k: int, metric: str = "dots") -> Tensor:
    """Dynamic graph (B, N, N) in {0, 1}: row i links to its ``k`` most similar nodes (ties may add more).

    Built on detached features, as upstream: the graph structure gets no gradient.
    """
    x = nodes.detach()
    if metric == "dots":
        sim = x @ x.transpose(1, 2)
    elif metric == "cosine":
        x = F.normalize(x, p=2, dim=-1)
        sim = x @ x.transpose(1, 2)
    elif metric == "l1":
        dist = (x.unsqueeze(2) - x.unsqueeze(1)).abs().sum(dim=-1)  # (B, N, N)
        threshold = dist.topk(k, dim=-1, largest=False).values[..., -1:]
        return (dist <= threshold).float()
    else:
        raise ValueError(f"unknown FGG metric {metric!r}; expected one of {METRICS}")
    threshold = sim.topk(k, dim=-1, largest=True).values[..., -1:]  # (B, N, 1): the k-th largest per row
    return (sim >= threshold).float()


def normalize_adjacency(adj: Tensor) -> Tensor:
    """Symmetric normalisation D^-1/2 A D^-1/2 with D the row sums, in float32 like the official code."""
    adj = adj.float()
    d = adj.sum(dim=-1).pow(-0.5)  # (B, N); every row has >= k >= 1 neighbours, so no division by zero
    return d.unsqueeze(-1) * adj * d.unsqueeze(-2)


class FGG(nn.Module):
    """Stage 1 (ANFL) facial graph generation: one GCN layer over a top-K graph rebuilt from the features each call.

    nodes' = ReLU(nodes + BN_N(A . V(nodes) + U(nodes))), BN_N normalising per node over (batch, channel).
    """

    def __init__(self, dim: int, num_nodes: int, neighbor_num: int = 4, metric: str = "dots") -> None:
        super().__init__()
        if metric not in METRICS:
            raise ValueError(f"unknown FGG metric {metric!r}; expected one of {METRICS}")
        if not 1 <= neighbor_num <= num_nodes:
            raise ValueError(f"neighbor_num must be in [1, {num_nodes}], got {neighbor_num}")
        self.num_nodes = num_nodes
        self.neighbor_num = neighbor_num
        self.metric = metric
        self.U = nn.Linear(dim, dim)
        self.V = nn.Linear(dim, dim)
        self.bnv = nn.BatchNorm1d(num_nodes)
        nn.init.normal_(self.U.weight, 0.0, math.sqrt(2.0 / dim))
        nn.init.normal_(self.V.weight, 0.0, math.sqrt(2.0 / dim))

    def adjacency(self, nodes: Tensor) -> Tensor:
        """Normalised adjacency (B, N, N), float32."""
        return normalize_adjacency(topk_adjacency(nodes, self.neighbor_num, self.metric))

    def forward(self, nodes: Tensor) -> Tensor:
        a = self.adjacency(nodes).to(nodes.dtype)  # (B, N, N)
        aggregate = a @ self.V(nodes)  # (B, N, C)
        return F.relu(nodes + self.bnv(aggregate + self.U(nodes)))


class GEM(nn.Module):
    """Graph edge modelling: one feature per ordered AU pair from the per-AU maps and the global map.

    FAM: each AU map attends over the global tokens. ARM: for edge e = (j, k), start node k's map attends over end
    node j's map. Then edge_proj and a BatchNorm whose channel axis is the *edge* axis, and a mean over tokens.
    """

    def __init__(self, dim: int, num_nodes: int) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.FAM = CrossAttention(dim)
        self.ARM = CrossAttention(dim)
        self.edge_proj = nn.Linear(dim, dim)
        self.bn = nn.BatchNorm2d(num_nodes * num_nodes)
        nn.init.normal_(self.edge_proj.weight, 0.0, math.sqrt(2.0 / dim))

    def edge_maps(self, f_u: Tensor, x: Tensor) -> Tensor:
        """f_u (B, N, T, C) per-AU maps, x (B, T, C) global map -> edge maps (B, N*N, T, C) before the token mean."""
        b, n, t, c = f_u.shape
        feat = self.FAM(f_u, x.unsqueeze(1))  # (B, N, T, C)
        # project each node once, then pair by broadcasting: query from start k (dim 2), key/value from end j (dim 1)
        q = self.ARM.linear_q(feat).unsqueeze(1)  # (B, 1, N, T, C/2)
        k = self.ARM.linear_k(feat).unsqueeze(2)  # (B, N, 1, T, C/2)
        v = self.ARM.linear_v(feat).unsqueeze(2)  # (B, N, 1, T, C)
        edge = self.ARM.attend(q, k, v).reshape(b, n * n, t, c)  # (B, N*N, T, C)
        return self.bn(self.edge_proj(edge))

    def forward(self, f_u: Tensor, x: Tensor) -> Tensor:
        return self.edge_maps(f_u, x).mean(dim=-2)  # (B, N*N, C)


class GatedGCN(nn.Module):
    """Stage 2 (MEFL) residual gated GCN with multi-dimensional edge features (Bresson & Laurent 2017).

    Per layer l, with [j] / [k] the end / start node of each edge:
      edges += ReLU(BNE_l(A_l(x)[j] + B_l(x)[k] + E_l(edges)))
      g      = softmax over k of sigmoid(edges)            (per channel, sums to 1 for each end node j)
      x      = ReLU(x + BNV_l(U_l(x) + (1/N) sum_k g[j,k] * V_l(x)[k]))
    BNE normalises per edge and BNV per node (channel axis = edge / node index), as upstream.
    """

    def __init__(self, dim: int, num_nodes: int, num_layers: int = 2) -> None:
        super().__init__()
        self.num_nodes = num_nodes
        self.num_layers = num_layers
        for layer in range(1, num_layers + 1):  # registration order gives the official key order
            for name in "UVABE":
                setattr(self, f"{name}{layer}", nn.Linear(dim, dim, bias=False))
        for layer in range(1, num_layers + 1):
            setattr(self, f"bnv{layer}", nn.BatchNorm1d(num_nodes))
            setattr(self, f"bne{layer}", nn.BatchNorm1d(num_nodes * num_nodes))
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / dim))

    def gate(self, edges: Tensor) -> Tensor:
        """Edge features (B, N*N, C) -> gates (B, N, N, C), softmax over the start node k."""
        b, _, c = edges.shape
        return torch.softmax(torch.sigmoid(edges).view(b, self.num_nodes, self.num_nodes, c), dim=2)

    def layer(self, i: int, x: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
        u, v, a, b_, e = (getattr(self, f"{name}{i}") for name in "UVABE")
        bnv, bne = getattr(self, f"bnv{i}"), getattr(self, f"bne{i}")
        edges = edges + F.relu(bne(pair_end(a(x)) + pair_start(b_(x)) + e(edges)))  # (B, N*N, C)
        messages = (self.gate(edges) * v(x).unsqueeze(1)).sum(dim=2)  # (B, N, C): sum over start nodes k
        x = F.relu(x + bnv(u(x) + messages / self.num_nodes))
        return x, edges

    def forward(self, nodes: Tensor, edges: Tensor) -> tuple[Tensor, Tensor]:
        """nodes (B, N, C), edges (B, N*N, C) -> refined (nodes, edges); edges stay un-sigmoided residual features."""
        for i in range(1, self.num_layers + 1):
            nodes, edges = self.layer(i, nodes, edges)
        return nodes, edges
