"""The latent-mining student: from the MAE latents of the *visible* patches to the teacher's AU graph.

The MAE encoder sees only the non-occluded patch tokens of a face, so the student gets a variable-length, padded
set ``VisibleLatents`` (B, 1+K, D) plus where each token sits (``ids_keep``). It must return what the ME-GraphAU
teacher returns on the clean face: per-AU node features (B, N, C) and AU-pair edge features (B, N*N, C) of the
teacher's width, which node/edge distillation pulls together, and on top of them the teacher's own graph head, so
probabilities are on the same cosine scale (threshold 0.5).

Two readouts turn latents into node features (``StudentConfig.readout``):

- ``"grid"`` (default): every visible latent goes back to its grid cell, occluded cells hold a learned mask
  embedding, and each AU reads the grid with its own position-specific weights (``spatial_maps`` learned maps over
  the cells per AU, then a per-AU linear map). An AU lives in a known place on an aligned face; a readout that knows
  *where* a latent came from can weigh brow cells for AU1 and lip-corner cells for AU12, and can learn what to
  infer when those cells are masked. Measured on SynthFACS (docs/student.md): a set readout over the same latents
  could not even fit its training faces.
- ``"set"``: AFG pooling plus learned-query cross-attention over the unordered set of visible latents (the first
  design, kept as an ablation): order-free, position only through what the encoder put into each latent.

Edges: every ordered pair e = j*N + k (j end, k start, as upstream) starts from an MLP on ``[n_j, n_k, n_j * n_k]``
and may then read the readout's context through ``edge_depth`` cross-attention blocks. On top sits the teacher's
``GatedGCN``, cosine classifier ``sc`` and ``edge_fc`` Linear(C, 4), under the teacher's names (the teacher's
``head.*``), so they can be initialised from a trained teacher with :meth:`LatentStudent.init_from_teacher`.

KD targets are the teacher's gated-GCN outputs, which is what ``AUOutput`` carries for both models.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import torch
from timm.layers import Mlp
from torch import Tensor, nn

from occau.models.mae import MaskedAutoencoderViT, VisibleLatents
from occau.models.megraphau.blocks import au_cosine_scores
from occau.models.megraphau.graph import GatedGCN, pair_end, pair_start
from occau.models.outputs import AUOutput


READOUTS = ("grid", "set")


@dataclass(frozen=True)
class StudentConfig:
    # D and L come from the MAE encoder the student reads; None in a stage config means "the encoder's" (for_encoder)
    embed_dim: int | None = None  # D: width of the MAE latents
    num_patches: int | None = None  # L: cells of the encoder's token grid (the grid readout's positions)
    num_aus: int = 12  # N
    dim: int = 512  # C: the teacher's node/edge width
    readout: str = "grid"  # "grid" (position-aware) or "set" (order-free ablation); see the module docstring
    spatial_maps: int = 4  # R: learned spatial maps per AU (grid readout)
    num_heads: int = 8
    depth: int = 2  # cross-attention blocks for the AU queries (set readout)
    edge_depth: int = 1  # cross-attention blocks for the pair (edge) queries; 0 = pair MLP only
    mlp_ratio: float = 2.0
    gcn_layers: int = 2
    use_cls: bool = True  # let the readout read the MAE cls token as well as the patch tokens
    afg_init: bool = True  # set readout: start each AU query from the teacher-style AFG pooling
    drop: float = 0.0

    def __post_init__(self) -> None:
        if self.readout not in READOUTS:
            raise ValueError(f"StudentConfig.readout must be one of {READOUTS}, got {self.readout!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"StudentConfig.dim {self.dim} is not a multiple of num_heads {self.num_heads}")
        if (self.num_aus < 1 or self.depth < 1 or self.edge_depth < 0 or self.gcn_layers < 1
                or self.spatial_maps < 1 or (self.num_patches is not None and self.num_patches < 1)):
            raise ValueError(f"invalid StudentConfig sizes: {self}")

    def for_encoder(self, embed_dim: int, num_patches: int) -> StudentConfig:
        """This config with the encoder's width D and token count L filled in; a value set that differs is an
        error (a student cannot read latents of another width or grid)."""
        for key, actual in (("embed_dim", embed_dim), ("num_patches", num_patches)):
            given = getattr(self, key)
            if given is not None and given != actual:
                raise ValueError(f"model.{key} is {given} but the MAE encoder has {actual}")
        return replace(self, embed_dim=embed_dim, num_patches=num_patches)


STUDENT_CONFIGS: dict[str, StudentConfig] = {
    # ViT-B/16 MAE latents (14 x 14 grid) -> the ResNet-50 teacher's width (UPSTREAM §2.1: C = 2048 // 4).
    "student_vitb_bp4d": StudentConfig(embed_dim=768, num_patches=196, num_aus=12, dim=512, num_heads=8),
    "student_vitb_disfa": StudentConfig(embed_dim=768, num_patches=196, num_aus=8, dim=512, num_heads=8),
    # The SynthFACS ViT (width 192, 8 x 8 grid at 64 px) -> its ResNet-18 teacher's width (C = 512 // 4).
    "student_tiny_synth_bp4d": StudentConfig(embed_dim=192, num_patches=64, num_aus=12, dim=128, num_heads=4),
    "student_tiny_synth_disfa": StudentConfig(embed_dim=192, num_patches=64, num_aus=8, dim=128, num_heads=4),
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


class GridReadout(nn.Module):
    """Position-aware readout: visible latents on their grid cells, a learned mask embedding elsewhere, and per AU
    ``R`` learned spatial maps over the cells followed by a per-AU linear map.

    Node i = ``W_i [A_i1 X, ..., A_iR X] + b_i`` where X (1+L, C) holds the projected cls token and the L cells. This
    is a rank-R factorisation of a full position-indexed linear map (R = 1+L recovers it) that stays cheap at ViT-B:
    N*R*(1+L)*C + N*R*C*C MACs, about 3 % of a ViT-B/16 encoder at 50 % occlusion.
    """

    def __init__(self, c: StudentConfig) -> None:
        super().__init__()
        self.use_cls = c.use_cls
        self.norm = nn.LayerNorm(c.embed_dim)
        self.proj = nn.Linear(c.embed_dim, c.dim)
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, c.dim))  # what an occluded (or unread cls) cell holds
        cells = 1 + c.num_patches
        # Maps start as mean pooling plus noise, so every AU first sees the whole face and then learns where to look.
        self.maps = nn.Parameter(torch.full((c.num_aus, c.spatial_maps, cells), 1.0 / cells))
        self.mix = nn.Parameter(torch.empty(c.num_aus, c.spatial_maps * c.dim, c.dim))
        self.mix_bias = nn.Parameter(torch.zeros(c.num_aus, c.dim))
        self.out_norm = nn.LayerNorm(c.dim)
        with torch.no_grad():
            self.maps.add_(torch.randn_like(self.maps) / cells**0.5)
            nn.init.normal_(self.mask_embed, std=0.02)
            nn.init.normal_(self.mix, std=(c.spatial_maps * c.dim) ** -0.5)

    def no_weight_decay(self) -> set[str]:
        return {"mask_embed", "mix_bias"}

    def cells(self, latents: VisibleLatents) -> Tensor:
        """Visible latents (B, 1+K, D) -> the projected grid (B, 1+L, C): cls first, then cells in raster order."""
        x = self.proj(self.norm(latents.tokens))  # (B, 1+K, C)
        # Padded slots are dropped by to_cells, so neither their content nor their number matters.
        cells = latents.to_cells(x[:, 1:], self.mask_embed)  # (B, L, C)
        cls = x[:, :1] if self.use_cls else self.mask_embed.expand(x.shape[0], 1, -1)
        return torch.cat([cls, cells], dim=1)  # (B, 1+L, C)

    def forward(self, latents: VisibleLatents) -> tuple[Tensor, Tensor, Tensor]:
        """-> nodes (B, N, C), context (B, 1+L, C) and its padding mask (B, 1+L) (all False: every cell exists)."""
        grid = self.cells(latents)  # (B, 1+L, C)
        pooled = torch.einsum("nrl,blc->bnrc", self.maps, grid).flatten(2)  # (B, N, R*C)
        nodes = torch.einsum("bnk,nkc->bnc", pooled, self.mix) + self.mix_bias  # (B, N, C)
        return self.out_norm(nodes), grid, grid.new_zeros(grid.shape[:2], dtype=torch.bool)


class SetReadout(nn.Module):
    """Order-free readout (ablation): N learned AU queries, started from AFG pooling, read the visible latents
    through ``depth`` masked cross-attention blocks. A learnable *null* key/value is always attendable, so a face
    with no visible patch gets a learned default instead of a softmax over nothing (NaN)."""

    def __init__(self, c: StudentConfig) -> None:
        super().__init__()
        self.config = c
        self.proj = nn.Sequential(nn.Linear(c.embed_dim, c.dim), nn.LayerNorm(c.dim))
        self.null_token = nn.Parameter(torch.zeros(1, 1, c.dim))
        self.au_queries = nn.Parameter(torch.zeros(1, c.num_aus, c.dim))
        # AFG as in the teacher: a per-AU linear map + ReLU on every token, then the mean over *visible* tokens.
        self.afg_weight = nn.Parameter(torch.empty(c.num_aus, c.dim, c.dim)) if c.afg_init else None
        self.afg_bias = nn.Parameter(torch.zeros(c.num_aus, c.dim)) if c.afg_init else None
        self.node_blocks = nn.ModuleList(CrossBlock(c.dim, c.num_heads, c.mlp_ratio, c.drop) for _ in range(c.depth))
        self.node_norm = nn.LayerNorm(c.dim)
        nn.init.normal_(self.null_token, std=0.02)
        nn.init.normal_(self.au_queries, std=0.02)
        if self.afg_weight is not None:
            nn.init.normal_(self.afg_weight, std=(2.0 / c.dim) ** 0.5)

    def no_weight_decay(self) -> set[str]:
        return {"null_token", "au_queries", "afg_bias"}

    def context(self, tokens: Tensor, padding_mask: Tensor) -> tuple[Tensor, Tensor]:
        """Latents (B, 1+K, D) -> keys (B, 2+K, C) with the null token first, and their padding mask (B, 2+K)."""
        padding_mask = padding_mask.to(torch.bool)
        if not self.config.use_cls:
            padding_mask = torch.cat([padding_mask.new_ones(padding_mask.shape[0], 1), padding_mask[:, 1:]], dim=1)
        x = self.proj(tokens)  # (B, 1+K, C)
        x = torch.cat([self.null_token.expand(x.shape[0], -1, -1), x], dim=1)  # (B, 2+K, C)
        return x, torch.cat([padding_mask.new_zeros(x.shape[0], 1), padding_mask], dim=1)

    def forward(self, latents: VisibleLatents) -> tuple[Tensor, Tensor, Tensor]:
        """-> nodes (B, N, C), context (B, 2+K, C) and its padding mask (B, 2+K)."""
        context, mask = self.context(latents.tokens, latents.padding_mask)
        nodes = self.au_queries.expand(context.shape[0], -1, -1)  # (B, N, C)
        if self.afg_weight is not None:
            nodes = nodes + self.afg(context, mask)
        for blk in self.node_blocks:
            nodes = blk(nodes, context, mask)
        return self.node_norm(nodes), context, mask

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


class LatentStudent(nn.Module):
    """Visible MAE latents -> ``AUOutput`` with the teacher's node/edge features, probabilities and edge logits."""

    def __init__(self, config: StudentConfig) -> None:
        super().__init__()
        if config.embed_dim is None or config.num_patches is None:
            raise ValueError("LatentStudent needs the encoder's embed_dim and num_patches (StudentConfig.for_encoder)")
        self.config = c = config
        self.readout = GridReadout(c) if c.readout == "grid" else SetReadout(c)
        self.pair_mlp = Mlp(3 * c.dim, c.dim, c.dim, drop=c.drop)
        self.edge_blocks = nn.ModuleList(
            CrossBlock(c.dim, c.num_heads, c.mlp_ratio, c.drop) for _ in range(c.edge_depth)
        )
        self.edge_norm = nn.LayerNorm(c.dim)
        # The teacher's graph head, under its names (head.gnn / head.sc / head.edge_fc in the teacher).
        self.gnn = GatedGCN(c.dim, c.num_aus, num_layers=c.gcn_layers)
        self.sc = nn.Parameter(torch.empty(c.num_aus, c.dim))
        self.edge_fc = nn.Linear(c.dim, 4)
        nn.init.xavier_uniform_(self.sc)
        nn.init.xavier_uniform_(self.edge_fc.weight)

    def no_weight_decay(self) -> set[str]:
        return {f"readout.{name}" for name in self.readout.no_weight_decay()}

    def forward_features(self, latents: VisibleLatents) -> tuple[Tensor, Tensor]:
        """Visible latents -> (nodes (B, N, C), edges (B, N*N, C)) before the GCN."""
        tokens = latents.tokens
        if tokens.shape[:2] != latents.padding_mask.shape or tokens.shape[-1] != self.config.embed_dim:
            raise ValueError(
                f"latents {tuple(tokens.shape)} / padding_mask {tuple(latents.padding_mask.shape)} do not fit "
                f"(B, 1+K, {self.config.embed_dim}) / (B, 1+K)"
            )
        if latents.token_mask.shape[1] != self.config.num_patches:
            raise ValueError(f"latents come from a {latents.token_mask.shape[1]}-patch grid; the student was built "
                             f"for {self.config.num_patches} (StudentConfig.num_patches)")
        nodes, context, mask = self.readout(latents)
        edges = self.pair_mlp(torch.cat([pair_end(nodes), pair_start(nodes), pair_end(nodes) * pair_start(nodes)], -1))
        for blk in self.edge_blocks:
            edges = blk(edges, context, mask)  # (B, N*N, C)
        return nodes, self.edge_norm(edges)

    def forward_head(self, nodes: Tensor, edges: Tensor) -> AUOutput:
        graph_nodes, graph_edges = self.gnn(nodes, edges)  # ReLU'd nodes: non-negative, as the cosine classifier needs
        return AUOutput(
            probs=au_cosine_scores(graph_nodes, self.sc),
            node_features=graph_nodes,
            edge_features=graph_edges,
            edge_logits=self.edge_fc(graph_edges),
            node_inputs=nodes,
            edge_inputs=edges,
        )

    def forward(self, latents: VisibleLatents) -> AUOutput:
        return self.forward_head(*self.forward_features(latents))

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


class EncoderStudent(nn.Module):
    """The method as one module: the MAE encoder on the visible tokens of an occluded face, then the student.

    Its ``state_dict`` (``encoder.*``, ``student.*``) is the student bundle a checkpoint stores. When the encoder is
    fine-tuned, ``lr_scales`` gives MAE fine-tuning's layer-wise learning-rate decay: block i of D is scaled by
    ``layer_decay ** (D - i)``, the patch embedding and cls token by ``layer_decay ** (D + 1)``, so the layers
    closest to the pixels move least.
    """

    def __init__(self, encoder: MaskedAutoencoderViT, student: LatentStudent, layer_decay: float = 1.0) -> None:
        super().__init__()
        if encoder.has_decoder:
            raise ValueError("EncoderStudent takes an encoder-only MAE (occau.models.mae.encoder_only)")
        if (encoder.config.embed_dim, encoder.config.num_patches) != (student.config.embed_dim,
                                                                      student.config.num_patches):
            raise ValueError(f"student built for D={student.config.embed_dim}, L={student.config.num_patches}; the "
                             f"encoder gives D={encoder.config.embed_dim}, L={encoder.config.num_patches}")
        self.encoder, self.student, self.layer_decay = encoder, student, layer_decay

    def forward(self, images: Tensor, token_mask: Tensor) -> AUOutput:
        return self.student(self.encoder.encode_visible(images, token_mask))

    def no_weight_decay(self) -> set[str]:
        return ({f"encoder.{n}" for n in self.encoder.no_weight_decay()}
                | {f"student.{n}" for n in self.student.no_weight_decay()})

    def lr_scales(self) -> dict[str, float]:
        """Learning-rate multiplier of every encoder parameter (student parameters: 1)."""
        depth = len(self.encoder.blocks)
        scales = {}
        for name, _ in self.encoder.named_parameters():
            if name.startswith("blocks."):
                scales[f"encoder.{name}"] = self.layer_decay ** (depth - int(name.split(".")[1]))
            elif name.startswith("norm."):
                scales[f"encoder.{name}"] = 1.0
            else:  # patch_embed, cls_token, pos_embed
                scales[f"encoder.{name}"] = self.layer_decay ** (depth + 1)
        return scales
