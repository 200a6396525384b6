"""The latent-mining student: from the MAE latents of the *visible* patches to the teacher's AU graph.

The MAE encoder (frozen) sees only the non-occluded patch tokens of a face, so the student gets a variable-length,
padded set ``VisibleLatents.tokens`` (B, 1+K, D). It must return what the ME-GraphAU teacher returns on the clean
face: per-AU node features (B, N, C) and AU-pair edge features (B, N*N, C) of the teacher's width, which node/edge
distillation pulls together, and on top of them the teacher's own graph head, so probabilities are on the same
cosine scale (threshold 0.5).

Design (see docs/student.md for the alternatives and why they were not taken):

1. ``proj``: Linear(D, C) + LayerNorm on every latent. No BatchNorm here (unlike the teacher's ``global_linear``):
   batch statistics would mix in the padded slots.
2. AU queries: N learnable vectors read the latents through ``depth`` pre-norm cross-attention + MLP blocks. The
   key padding mask hides padded slots; a learnable *null* key/value is always attendable, so a face with no
   visible patch gives a learned default instead of a softmax over nothing (NaN). Nothing depends on the slot
   order: the latents already carry their position (the encoder added it), so the output is invariant to the order
   of the visible tokens and to the amount of padding.
3. Edges: every ordered pair e = j*N + k (j end, k start, as upstream) starts from an MLP on
   ``[n_j, n_k, n_j * n_k]`` and then reads the latents itself through ``edge_depth`` cross-attention blocks: the
   pair-specific evidence GEM takes from its per-AU maps, at N*N queries x (1+K) keys instead of GEM's
   N*N x T x T attention, which would cost about as much as the ViT-B encoder.
4. The teacher's ``GatedGCN``, cosine classifier ``sc`` and ``edge_fc`` Linear(C, 4), under the teacher's names
   (``gnn``, ``sc``, ``edge_fc`` = the teacher's ``head.*``), so they can be initialised from a trained teacher
   with :meth:`LatentStudent.init_from_teacher`.

KD targets are the teacher's gated-GCN outputs, which is what ``AUOutput`` carries for both models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from timm.layers import Mlp
from torch import Tensor, nn

from occau.models.mae import VisibleLatents
from occau.models.megraphau.blocks import au_cosine_scores
from occau.models.megraphau.graph import GatedGCN, pair_end, pair_start
from occau.models.outputs import AUOutput


@dataclass(frozen=True)
class StudentConfig:
    embed_dim: int = 768  # D: width of the MAE latents
    num_aus: int = 12  # N
    dim: int = 512  # C: the teacher's node/edge width
    num_heads: int = 8
    depth: int = 2  # cross-attention blocks for the AU (node) queries
    edge_depth: int = 1  # cross-attention blocks for the pair (edge) queries; 0 = pair MLP only
    mlp_ratio: float = 2.0
    gcn_layers: int = 2
    use_cls: bool = True  # let queries read the MAE cls token as well as the patch tokens
    afg_init: bool = True  # start each AU query from the teacher-style AFG pooling of the visible tokens
    drop: float = 0.0

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise ValueError(f"StudentConfig.dim {self.dim} is not a multiple of num_heads {self.num_heads}")
        if self.num_aus < 1 or self.depth < 1 or self.edge_depth < 0 or self.gcn_layers < 1:
            raise ValueError(f"invalid StudentConfig sizes: {self}")


STUDENT_CONFIGS: dict[str, StudentConfig] = {
    # ViT-B/16 MAE latents -> the ResNet-50 teacher's width (UPSTREAM §2.1: C = 2048 // 4).
    "student_vitb_bp4d": StudentConfig(embed_dim=768, num_aus=12, dim=512, num_heads=8),
    "student_vitb_disfa": StudentConfig(embed_dim=768, num_aus=8, dim=512, num_heads=8),
    # The SynthFACS ViT (width 192) -> its ResNet-18 teacher's width (C = 512 // 4).
    "student_tiny_synth_bp4d": StudentConfig(embed_dim=192, num_aus=12, dim=128, num_heads=4),
    "student_tiny_synth_disfa": StudentConfig(embed_dim=192, num_aus=8, dim=128, num_heads=4),
}

TEACHER_HEAD_PREFIX = "head."
TEACHER_HEAD_MODULES = ("gnn", "sc", "edge_fc")


class CrossBlock(nn.Module):
    """Pre-norm cross-attention + MLP: queries (B, Q, C) read a context (B, T, C) whose padded slots are masked."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 2.0, drop: float = 0.0) -> None:
        super().__init__()
        self.norm_q = nn.LayerNorm(dim)
        self.norm_kv = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, num_heads, dropout=drop, batch_first=True)
        self.norm_mlp = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, q: Tensor, context: Tensor, padding_mask: Tensor) -> Tensor:
        kv = self.norm_kv(context)
        q = q + self.attn(self.norm_q(q), kv, kv, key_padding_mask=padding_mask, need_weights=False)[0]
        return q + self.mlp(self.norm_mlp(q))


class LatentStudent(nn.Module):
    """Visible MAE latents -> ``AUOutput`` with the teacher's node/edge features, probabilities and edge logits."""

    def __init__(self, config: StudentConfig = StudentConfig()) -> None:
        super().__init__()
        self.config = c = config
        self.proj = nn.Sequential(nn.Linear(c.embed_dim, c.dim), nn.LayerNorm(c.dim))
        self.null_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.au_queries = nn.Parameter(torch.zeros(1, c.num_aus, c.dim))
        # AFG as in the teacher: a per-AU linear map + ReLU on every token, then the mean over *visible* tokens.
        self.afg_weight = nn.Parameter(torch.empty(c.num_aus, c.dim, c.dim)) if c.afg_init else None
        self.afg_bias = nn.Parameter(torch.zeros(c.num_aus, c.dim)) if c.afg_init else None
        self.node_blocks = nn.ModuleList(CrossBlock(c.dim, c.num_heads, c.mlp_ratio, c.drop) for _ in range(c.depth))
        self.node_norm = nn.LayerNorm(c.dim)
        self.pair_mlp = Mlp(3 * c.dim, c.dim, c.dim, drop=c.drop)
        self.edge_blocks = nn.ModuleList(
            CrossBlock(c.dim, c.num_heads, c.mlp_ratio, c.drop) for _ in range(c.edge_depth)
        )
        self.edge_norm = nn.LayerNorm(c.dim)
        # The teacher's graph head, under its names (head.gnn / head.sc / head.edge_fc in the teacher).
        self.gnn = GatedGCN(c.dim, c.num_aus, num_layers=c.gcn_layers)
        self.sc = nn.Parameter(torch.empty(c.num_aus, c.dim))
        self.edge_fc = nn.Linear(c.dim, 4)
        nn.init.normal_(self.null_token, std=0.02)
        nn.init.normal_(self.au_queries, std=0.02)
        if self.afg_weight is not None:
            nn.init.normal_(self.afg_weight, std=(2.0 / c.dim) ** 0.5)
        nn.init.xavier_uniform_(self.sc)
        nn.init.xavier_uniform_(self.edge_fc.weight)

    def no_weight_decay(self) -> set[str]:
        return {"null_token", "au_queries", "afg_bias"}

    def context(self, tokens: Tensor, padding_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Latents (B, 1+K, D) -> keys (B, 2+K, C) with the null token first, and their padding mask (B, 2+K)."""
        if tokens.shape[:2] != padding_mask.shape or tokens.shape[-1] != self.config.embed_dim:
            raise ValueError(
                f"latents {tuple(tokens.shape)} / padding_mask {tuple(padding_mask.shape)} do not fit "
                f"(B, 1+K, {self.config.embed_dim}) / (B, 1+K)"
            )
        padding_mask = padding_mask.to(torch.bool)
        if not self.config.use_cls:
            padding_mask = torch.cat([padding_mask.new_ones(padding_mask.shape[0], 1), padding_mask[:, 1:]], dim=1)
        x = self.proj(tokens)  # (B, 1+K, C)
        x = torch.cat([self.null_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 2+K, C)
        return x, torch.cat([padding_mask.new_zeros(x.shape[0], 1), padding_mask], dim=1)

    def forward_features(self, tokens: Tensor, padding_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Latents (B, 1+K, D), padding_mask (B, 1+K) -> (nodes (B, N, C), edges (B, N*N, C)) before the GCN."""
        context, mask = self.context(tokens, padding_mask)
        nodes = self.au_queries.expand(context.shape[0], -1, -1)  # (B, N, C)
        if self.afg_weight is not None:
            nodes = nodes + self.afg(context, mask)
        for blk in self.node_blocks:
            nodes = blk(nodes, context, mask)
        nodes = self.node_norm(nodes)
        edges = self.pair_mlp(torch.cat([pair_end(nodes), pair_start(nodes), pair_end(nodes) * pair_start(nodes)], -1))
        for blk in self.edge_blocks:
            edges = blk(edges, context, mask)  # (B, N*N, C)
        return nodes, self.edge_norm(edges)

    def afg(self, context: Tensor, mask: Tensor) -> Tensor:
        """Per-AU features of every visible token, averaged: (B, T, C) -> (B, N, C).

        Learned queries alone start by attending uniformly, i.e. to the mean token, which barely differs between
        faces; a nonlinearity per token *before* pooling keeps the evidence, as the teacher's AFG does. Padded slots
        and the null token are excluded; a face with no visible token gets zeros.
        """
        keep = (~mask).to(context.dtype)  # (B, T)
        keep[:, 0] = 0  # the null token carries no evidence
        per_token = torch.relu(torch.einsum("btc,ncd->bntd", context, self.afg_weight) + self.afg_bias[:, None])
        return (per_token * keep[:, None, :, None]).sum(2) / keep.sum(1).clamp(min=1)[:, None, None]

    def forward_head(self, nodes: Tensor, edges: Tensor) -> AUOutput:
        nodes, edges = self.gnn(nodes, edges)  # ReLU'd nodes: non-negative, as the cosine classifier needs
        return AUOutput(
            probs=au_cosine_scores(nodes, self.sc),
            node_features=nodes,
            edge_features=edges,
            edge_logits=self.edge_fc(edges),
        )

    def forward(self, latents: VisibleLatents) -> AUOutput:
        return self.forward_head(*self.forward_features(latents.tokens, latents.padding_mask))

    @torch.no_grad()
    def init_from_teacher(self, teacher_state: Mapping[str, Tensor]) -> list[str]:
        """Copy the teacher's ``head.gnn.*``, ``head.sc`` and ``head.edge_fc.*`` (MEFL keys) into the student.

        Every student key of those modules must be present with the same shape; returns the keys copied.
        """
        own = {k: v for k, v in self.state_dict().items() if k.split(".")[0] in TEACHER_HEAD_MODULES}
        missing = [k for k in own if TEACHER_HEAD_PREFIX + k not in teacher_state]
        if missing:
            raise KeyError(f"teacher state_dict lacks {len(missing)} graph-head keys, e.g. {missing[:3]}")
        wrong = [
            f"{k}: student {tuple(v.shape)} vs teacher {tuple(teacher_state[TEACHER_HEAD_PREFIX + k].shape)}"
            for k, v in own.items()
            if v.shape != teacher_state[TEACHER_HEAD_PREFIX + k].shape
        ]
        if wrong:
            raise ValueError("teacher graph head does not fit the student: " + "; ".join(wrong[:3]))
        for k, v in own.items():
            v.copy_(teacher_state[TEACHER_HEAD_PREFIX + k])
        return sorted(own)


def build_student(name_or_config: str | StudentConfig) -> LatentStudent:
    """A student from a preset name in :data:`STUDENT_CONFIGS` or an explicit config."""
    if isinstance(name_or_config, StudentConfig):
        return LatentStudent(name_or_config)
    try:
        return LatentStudent(STUDENT_CONFIGS[name_or_config])
    except KeyError:
        raise ValueError(f"unknown student preset {name_or_config!r}; known: {sorted(STUDENT_CONFIGS)}") from None
