"""Masked autoencoder with a ViT backbone (He et al. 2022), state-dict compatible with the official ``models_mae``.

Besides the official random-masking pre-training path (``forward``), the model has the two entry points the paper
rests on: ``encode_visible`` runs the encoder on the visible (non-occluded) patch tokens only, with a different
visible count per sample, and ``reconstruct`` lets the decoder fill the occluded patches for the
reconstruct-then-teacher baseline. Conventions follow UPSTREAM.md §1: patch index row-major, inside a patch
(row, col, channel) with channel fastest, masks 1 = removed/occluded.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

from occau.models.pos_embed import sincos_2d


@dataclass(frozen=True)
class MAEConfig:
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    norm_pix_loss: bool = False

    def __post_init__(self) -> None:
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.embed_dim % 4 or self.decoder_embed_dim % 4:
            raise ValueError("embed_dim and decoder_embed_dim must be multiples of 4 (2-D sin-cos tables)")

    @property
    def grid_size(self) -> int:
        return self.img_size // self.patch_size

    @property
    def num_patches(self) -> int:
        return self.grid_size**2

    @property
    def patch_dim(self) -> int:
        return self.patch_size**2 * self.in_chans


MAE_CONFIGS: dict[str, MAEConfig] = {
    # Official factories of facebookresearch/mae (UPSTREAM.md §1.1).
    "mae_vit_base_patch16": MAEConfig(embed_dim=768, depth=12, num_heads=12),
    "mae_vit_large_patch16": MAEConfig(embed_dim=1024, depth=24, num_heads=16),
    "mae_vit_huge_patch14": MAEConfig(patch_size=14, embed_dim=1280, depth=32, num_heads=16),
    # Small CPU presets for SynthFACS (SYNTHFACS.md "CPU budget"): 196 and 64 tokens.
    "mae_vit_tiny_patch8_112": MAEConfig(
        img_size=112, patch_size=8, embed_dim=192, depth=6, num_heads=3,
        decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4,
    ),
    "mae_vit_tiny_patch8_64": MAEConfig(
        img_size=64, patch_size=8, embed_dim=192, depth=6, num_heads=3,
        decoder_embed_dim=128, decoder_depth=2, decoder_num_heads=4,
    ),
}  # fmt: skip


@dataclass
class VisibleLatents:
    """Encoder output for the visible tokens of each sample, padded to the batch maximum K.

    ``tokens[:, 0]`` is cls; ``tokens[b, 1 + k]`` is the token of patch ``ids_keep[b, k]`` (spatial order) unless
    ``padding_mask[b, 1 + k]`` is True, in which case it is zero and carries nothing.
    """

    tokens: torch.Tensor  # (B, 1+K, D) after the final norm
    padding_mask: torch.Tensor  # (B, 1+K) bool, True = padding
    ids_keep: torch.Tensor  # (B, K) long, spatial patch indices (padded entries: valid but meaningless)
    token_mask: torch.Tensor  # (B, L) bool, True = occluded

    @property
    def num_visible(self) -> torch.Tensor:
        return (~self.token_mask).sum(dim=1)  # (B,)

    def to_cells(self, values: torch.Tensor, fill: torch.Tensor) -> torch.Tensor:
        """Per-token values (B, K, C) back to their patch cells: (B, L, C), ``fill`` (broadcastable to (B, 1, C)) in
        every cell without a visible token. Padded slots go to a spare cell L that is dropped.

        The grid takes the values' dtype: under mixed precision the values come out of an autocast layer in bf16/fp16
        while ``fill`` is an fp32 parameter, and scatter needs one dtype (the cast keeps ``fill``'s gradient)."""
        B, L = self.token_mask.shape
        C = values.shape[-1]
        slots = self.ids_keep.masked_fill(self.padding_mask[:, 1:], L)  # (B, K)
        cells = fill.to(values.dtype).expand(B, L + 1, C).clone()  # (B, L+1, C)
        return cells.scatter(1, slots.unsqueeze(-1).expand(-1, -1, C), values)[:, :L]


class MaskedAutoencoderViT(nn.Module):
    """MAE whose ``state_dict`` keys, shapes and order equal the official model's (or its encoder part)."""

    def __init__(self, config: MAEConfig = MAEConfig(), decoder: bool = True) -> None:
        super().__init__()
        self.config = config
        self.has_decoder = decoder
        c = config
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        block = partial(Block, mlp_ratio=c.mlp_ratio, qkv_bias=True, norm_layer=norm_layer)  # exact-erf GELU

        # Directly owned parameters come first in the state_dict, in this order (UPSTREAM.md §1.2).
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + c.num_patches, c.embed_dim), requires_grad=False)
        if decoder:
            self.mask_token = nn.Parameter(torch.zeros(1, 1, c.decoder_embed_dim))
            self.decoder_pos_embed = nn.Parameter(
                torch.zeros(1, 1 + c.num_patches, c.decoder_embed_dim), requires_grad=False
            )

        self.patch_embed = PatchEmbed(c.img_size, c.patch_size, c.in_chans, c.embed_dim)
        self.blocks = nn.ModuleList([block(c.embed_dim, c.num_heads) for _ in range(c.depth)])
        self.norm = norm_layer(c.embed_dim)
        if decoder:
            self.decoder_embed = nn.Linear(c.embed_dim, c.decoder_embed_dim)
            self.decoder_blocks = nn.ModuleList(
                [block(c.decoder_embed_dim, c.decoder_num_heads) for _ in range(c.decoder_depth)]
            )
            self.decoder_norm = norm_layer(c.decoder_embed_dim)
            self.decoder_pred = nn.Linear(c.decoder_embed_dim, c.patch_dim)
        self.initialize_weights()

    # ---------------------------------------------------------------- init
    def initialize_weights(self) -> None:
        """Fixed sin-cos tables; xavier-uniform Linear and patch projection; N(0, 0.02) tokens (UPSTREAM.md §1.1)."""
        grid = self.patch_embed.grid_size
        self.pos_embed.data.copy_(sincos_2d(self.config.embed_dim, grid).unsqueeze(0))
        if self.has_decoder:
            self.decoder_pos_embed.data.copy_(sincos_2d(self.config.decoder_embed_dim, grid).unsqueeze(0))
        w = self.patch_embed.proj.weight.data
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))  # as a Linear on the flattened patch
        nn.init.normal_(self.cls_token, std=0.02)
        if self.has_decoder:
            nn.init.normal_(self.mask_token, std=0.02)
        self.apply(_init_linear_and_norm)

    def no_weight_decay(self) -> set[str]:
        names = {"cls_token", "pos_embed", "mask_token", "decoder_pos_embed"}
        return {n for n, _ in self.named_parameters() if n in names}

    # ---------------------------------------------------------------- patches
    def patchify(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, p*p*C), patches row-major, inside a patch (row, col, channel)."""
        p = self.config.patch_size
        h, w = self.patch_embed.grid_size
        x = imgs.reshape(imgs.shape[0], imgs.shape[1], h, p, w, p)  # (B, C, h, p, w, p)
        x = x.permute(0, 2, 4, 3, 5, 1)  # (B, h, w, p, p, C)
        return x.reshape(imgs.shape[0], h * w, p * p * imgs.shape[1])

    def unpatchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, L, p*p*C) -> (B, C, H, W), the exact inverse of ``patchify``."""
        p, c = self.config.patch_size, self.config.in_chans
        h, w = self.patch_embed.grid_size
        x = x.reshape(x.shape[0], h, w, p, p, c)  # (B, h, w, p, p, C)
        x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, h, p, w, p)
        return x.reshape(x.shape[0], c, h * p, w * p)

    def embed_patches(self, imgs: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, L, D) patch tokens with their position added (before any token is dropped)."""
        return self.patch_embed(imgs) + self.pos_embed[:, 1:, :]

    def _cls(self, batch: int) -> torch.Tensor:
        return (self.cls_token + self.pos_embed[:, :1, :]).expand(batch, -1, -1)  # (B, 1, D)

    # ---------------------------------------------------------------- official pre-training path
    def random_masking(
        self, x: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Keep ``int(L*(1-r))`` tokens per sample, those with the smallest noise.

        x: (B, L, D) -> (x_kept (B, len_keep, D) in ascending-noise order, mask (B, L) float 0 = kept 1 = removed,
        ids_restore (B, L) long).
        """
        B, L, D = x.shape
        len_keep = int(L * (1 - mask_ratio))
        if noise is None:
            noise = torch.rand(B, L, device=x.device)  # (B, L) in [0, 1)
        ids_shuffle = torch.argsort(noise, dim=1)  # (B, L) ascending: small noise is kept
        ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, L)
        ids_keep = ids_shuffle[:, :len_keep]  # (B, len_keep)
        x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, D))
        mask = torch.ones(B, L, device=x.device)
        mask[:, :len_keep] = 0
        mask = torch.gather(mask, 1, ids_restore)  # (B, L) back to spatial order
        return x_kept, mask, ids_restore

    def forward_encoder(
        self, imgs: torch.Tensor, mask_ratio: float, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (latent (B, 1+len_keep, D) with kept tokens in shuffled order, mask (B, L), ids_restore (B, L))."""
        x = self.embed_patches(imgs)  # (B, L, D)
        x, mask, ids_restore = self.random_masking(x, mask_ratio, noise)
        x = torch.cat([self._cls(x.shape[0]), x], dim=1)  # (B, 1+len_keep, D)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x), mask, ids_restore

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent (B, 1+len_keep, D), ids_restore (B, L) -> pred (B, L, p*p*C)."""
        self._require_decoder()
        x = self.decoder_embed(latent)  # (B, 1+len_keep, Dd)
        B, L = ids_restore.shape
        fill = self.mask_token.expand(B, L + 1 - x.shape[1], -1)  # (B, L-len_keep, Dd)
        x_ = torch.cat([x[:, 1:, :], fill], dim=1)  # (B, L, Dd) in shuffled order
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # spatial order
        return self._decode_full(torch.cat([x[:, :1, :], x_], dim=1))

    def _decode_full(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 1+L, Dd) decoder tokens in spatial order, cls first -> pred (B, L, p*p*C)."""
        x = x + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        x = self.decoder_pred(self.decoder_norm(x))  # (B, 1+L, p*p*C)
        return x[:, 1:, :]

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean squared error on removed patches only (pixels, or per-patch normalised pixels)."""
        target = self.patchify(imgs)  # (B, L, p*p*C)
        if self.config.norm_pix_loss:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)  # unbiased, as upstream
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)  # (B, L) per-patch loss
        return (loss * mask).sum() / mask.sum()

    def forward(
        self, imgs: torch.Tensor, mask_ratio: float = 0.75, noise: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> (loss, pred (B, L, p*p*C), mask (B, L))."""
        latent, mask, ids_restore = self.forward_encoder(imgs, mask_ratio, noise)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    # ---------------------------------------------------------------- occlusion path
    def encode_visible(self, imgs: torch.Tensor, token_mask: torch.Tensor) -> VisibleLatents:
        """Encode only the visible tokens of each sample; occluded patches are never seen.

        imgs (B, C, H, W), token_mask (B, L) bool True = occluded. Samples may have different visible counts: they
        are padded to the batch maximum K and padded tokens are never attended to, so each sample's result equals
        running it alone.
        """
        x, padding_mask, ids_keep = self.embed_visible(imgs, token_mask)
        x = self.forward_blocks(x, padding_mask, 0, len(self.blocks))
        return self.finish_visible(x, padding_mask, ids_keep, token_mask)

    # encode_visible in three steps, so that several fine-tuned copies can share a frozen bottom of the encoder.
    def embed_visible(self, imgs: torch.Tensor, token_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """-> (tokens (B, 1+K, D) with cls first, padding_mask (B, 1+K) True = padded, ids_keep (B, K))."""
        token_mask = self._check_token_mask(imgs, token_mask)
        x = self.embed_patches(imgs)  # (B, L, D)
        ids_keep, padding = visible_ids(token_mask)  # (B, K), (B, K)
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # (B, K, D)
        x = x.masked_fill(padding.unsqueeze(-1), 0.0)  # padded slots hold an occluded patch: blank it
        x = torch.cat([self._cls(x.shape[0]), x], dim=1)  # (B, 1+K, D)
        padding_mask = torch.cat([padding.new_zeros(x.shape[0], 1), padding], dim=1)  # (B, 1+K)
        return x, padding_mask, ids_keep

    def forward_blocks(self, x: torch.Tensor, padding_mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Blocks ``start..stop-1`` on visible tokens (B, 1+K, D); padded slots are never attended to."""
        # timm/SDPA boolean masks mean "may attend"; (B, 1, 1, 1+K) broadcasts over heads and queries.
        attn_mask = ~padding_mask[:, None, None, :] if padding_mask.any() else None
        for blk in self.blocks[start:stop]:
            x = blk(x, attn_mask=attn_mask)
        return x

    def finish_visible(self, x: torch.Tensor, padding_mask: torch.Tensor, ids_keep: torch.Tensor,
                       token_mask: torch.Tensor) -> VisibleLatents:
        x = self.norm(x).masked_fill(padding_mask.unsqueeze(-1), 0.0)
        return VisibleLatents(tokens=x, padding_mask=padding_mask, ids_keep=ids_keep, token_mask=token_mask)

    def decode_visible(self, latents: VisibleLatents) -> torch.Tensor:
        """Decoder on visible latents, mask_token at every occluded patch -> pred (B, L, p*p*C)."""
        self._require_decoder()
        x = self.decoder_embed(latents.tokens)  # (B, 1+K, Dd)
        full = latents.to_cells(x[:, 1:, :], self.mask_token)  # (B, L, Dd), mask_token where occluded
        return self._decode_full(torch.cat([x[:, :1, :], full], dim=1))

    def reconstruct(self, imgs: torch.Tensor, token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Fill occluded patches with the decoder's prediction: -> (pasted imgs (B, C, H, W), pred (B, L, p*p*C)).

        Visible pixels are kept as they are; the paste happens in the (normalised) input space, which is what the
        pixel-loss models predict (UPSTREAM.md §1.6).
        """
        if self.config.norm_pix_loss:
            raise ValueError(
                "reconstruct() needs a pixel-loss MAE: a norm_pix_loss model predicts per-patch normalised pixels, "
                "which cannot be pasted into the image"
            )
        pred = self.decode_visible(self.encode_visible(imgs, token_mask))  # (B, L, p*p*C)
        m = token_mask.to(pred.dtype).unsqueeze(-1).expand(-1, -1, pred.shape[-1])  # (B, L, p*p*C)
        m = self.unpatchify(m)  # (B, C, H, W) 1 on occluded patches
        return imgs * (1 - m) + self.unpatchify(pred) * m, pred

    # ---------------------------------------------------------------- helpers
    def _require_decoder(self) -> None:
        if not self.has_decoder:
            raise RuntimeError("this MAE was built encoder-only (decoder=False), e.g. from a pretrain checkpoint")

    def _check_token_mask(self, imgs: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        expected = (imgs.shape[0], self.patch_embed.num_patches)
        if tuple(token_mask.shape) != expected:
            raise ValueError(f"token_mask must have shape {expected} (batch, patches), got {tuple(token_mask.shape)}")
        if token_mask.dtype != torch.bool:
            raise TypeError(f"token_mask must be bool (True = occluded), got {token_mask.dtype}")
        return token_mask


def encoder_only(mae: MaskedAutoencoderViT) -> MaskedAutoencoderViT:
    """A decoder-free copy of ``mae``'s encoder (its own parameters: fine-tuning it leaves ``mae`` untouched)."""
    encoder = MaskedAutoencoderViT(mae.config, decoder=False)
    own = encoder.state_dict()
    encoder.load_state_dict({k: v.detach().clone() for k, v in mae.state_dict().items() if k in own})
    return encoder


def visible_ids(token_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """token_mask (B, L) bool True = occluded -> (ids_keep (B, K) spatial order, padding (B, K) bool).

    K is the largest visible count in the batch; a stable sort puts each sample's visible patches first, in spatial
    order, followed by occluded ones, which fill the padded slots.
    """
    order = torch.sort(token_mask.to(torch.uint8), dim=1, stable=True).indices  # (B, L)
    num_visible = (~token_mask).sum(dim=1)  # (B,)
    k = int(num_visible.max()) if token_mask.shape[0] else 0
    ids_keep = order[:, :k]  # (B, K)
    padding = torch.arange(k, device=token_mask.device).unsqueeze(0) >= num_visible.unsqueeze(1)  # (B, K)
    return ids_keep, padding


def _init_linear_and_norm(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
