"""MAE model: numbers of the official code (mae_small fixture), the occlusion entry points, timm equivalence."""

from __future__ import annotations

import math
from functools import partial

import pytest
import timm
import torch
from safetensors.torch import load_file
from timm.layers import Attention
from timm.models.vision_transformer import VisionTransformer
from torch import nn

from occau.models.mae import MAE_CONFIGS, MAEConfig, MaskedAutoencoderViT, visible_ids
from occau.models.pos_embed import resize_pos_embed, sincos_2d

ATOL = 2e-5  # mae_small/manifest.json: recommended tolerance (fp32 vs fp64 gap <= 4.1e-6)
SMALL = MAEConfig(embed_dim=192, depth=2, num_heads=3, decoder_embed_dim=128, decoder_depth=1, decoder_num_heads=4)
RATIOS = {"r075": 0.75, "r050": 0.5, "r000": 0.0}
# io.safetensors keeps patchify_imgs and pred_* for sample 0 only (tests/fixtures/reference/mae_small/derive.py)


@pytest.fixture(scope="module")
def weights(reference_dir) -> dict[str, torch.Tensor]:
    return load_file(reference_dir / "mae_small" / "weights.safetensors")


@pytest.fixture(scope="module")
def io(reference_dir) -> dict[str, torch.Tensor]:
    return load_file(reference_dir / "mae_small" / "io.safetensors")


def _small(weights, **overrides) -> MaskedAutoencoderViT:
    model = MaskedAutoencoderViT(MAEConfig(**{**SMALL.__dict__, **overrides}))
    model.load_state_dict(weights, strict=True)
    return model.eval()


@pytest.fixture(scope="module")
def model(weights) -> MaskedAutoencoderViT:
    return _small(weights)


# ---------------------------------------------------------------- layout and position tables
def test_state_dict_layout_equals_official_vit_base():
    with torch.device("meta"):  # shapes only
        sd = MaskedAutoencoderViT(MAE_CONFIGS["mae_vit_base_patch16"]).state_dict()
        encoder = MaskedAutoencoderViT(MAE_CONFIGS["mae_vit_base_patch16"], decoder=False)
    keys = list(sd)
    assert len(keys) == 254 and sum(v.numel() for v in sd.values()) == 111_907_840
    assert keys[:6] == ["cls_token", "pos_embed", "mask_token", "decoder_pos_embed", "patch_embed.proj.weight",
                        "patch_embed.proj.bias"]  # fmt: skip
    groups = [k.split(".")[0] for k in keys[4:]]
    order = list(dict.fromkeys(groups))
    assert order == ["patch_embed", "blocks", "norm", "decoder_embed", "decoder_blocks", "decoder_norm", "decoder_pred"]
    assert sd["blocks.11.attn.qkv.weight"].shape == (2304, 768)
    assert sd["decoder_blocks.7.mlp.fc1.weight"].shape == (2048, 512)
    assert sd["decoder_pred.weight"].shape == (768, 512)
    assert list(encoder.state_dict()) == [k for k in keys if not k.startswith(("decoder_", "mask_token"))]
    assert len(encoder.state_dict()) == 150
    assert encoder.no_weight_decay() == {"cls_token", "pos_embed"}
    assert not encoder.pos_embed.requires_grad


def test_initialisation_follows_official_scheme():
    torch.manual_seed(0)
    m = MaskedAutoencoderViT(SMALL)
    bound = math.sqrt(6 / (192 + 3 * 16 * 16))  # xavier on the (D, p*p*C) view of the patch projection
    w = m.patch_embed.proj.weight
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert m.blocks[0].attn.qkv.bias.abs().max() == 0 and m.norm.weight.eq(1).all()
    assert 0.01 < m.cls_token.std() < 0.03 and 0.01 < m.mask_token.std() < 0.03


def test_pos_embed_equals_official_table(weights):
    assert torch.equal(sincos_2d(192, 14).unsqueeze(0), weights["pos_embed"])
    assert torch.equal(sincos_2d(128, 14).unsqueeze(0), weights["decoder_pos_embed"])


def test_pos_embed_halves_encode_column_then_row():
    grid_h, grid_w, d = 3, 5, 16
    table = sincos_2d(d, (grid_h, grid_w))  # (1 + 15, 16)
    assert table.shape == (16, 16) and table[0].eq(0).all()
    t = table[1:].reshape(grid_h, grid_w, d)
    # first half depends only on the column x, second half only on the row y
    assert torch.equal(t[0, :, : d // 2], t[2, :, : d // 2]) and torch.equal(t[:, 0, d // 2 :], t[:, 4, d // 2 :])
    i, j = 2, 3
    assert t[i, j, 0] == pytest.approx(math.sin(j)) and t[i, j, d // 4] == pytest.approx(math.cos(j))
    assert t[i, j, d // 2] == pytest.approx(math.sin(i)) and t[i, j, 3 * d // 4] == pytest.approx(math.cos(i))
    omega1 = 10000 ** (-1 / (d // 4))
    assert t[i, j, 1] == pytest.approx(math.sin(j * omega1))
    assert t[i, j, d // 2 + 1] == pytest.approx(math.sin(i * omega1))


def test_resize_pos_embed_regenerates_fixed_tables_and_interpolates_learned_ones():
    fixed = sincos_2d(32, 14).unsqueeze(0)
    assert torch.equal(resize_pos_embed(fixed, (14, 14), (7, 7)), sincos_2d(32, 7).unsqueeze(0))
    learned = torch.randn(1, 1 + 16, 32, generator=torch.Generator().manual_seed(0))
    out = resize_pos_embed(learned, (4, 4), (8, 8))
    assert out.shape == (1, 65, 32) and torch.equal(out[:, 0], learned[:, 0])
    assert not torch.equal(out[:, 1:9], sincos_2d(32, 8)[1:9])
    const = torch.ones(1, 17, 32)  # bicubic keeps a constant field constant
    torch.testing.assert_close(resize_pos_embed(const, (4, 4), (8, 8)), torch.ones(1, 65, 32))


# ---------------------------------------------------------------- official path: every tensor of io.safetensors
def test_patchify_matches_official_and_unpatchify_inverts(model, io):
    torch.testing.assert_close(model.patchify(io["imgs"])[:1], io["patchify_imgs"], atol=0, rtol=0)
    assert torch.equal(model.unpatchify(model.patchify(io["imgs"])), io["imgs"])
    x = torch.zeros(1, 3, 224, 224)
    x[0, 2, 37, 50] = 1.0  # channel 2, row 37, col 50 -> patch (2, 3), in-patch (5, 2)
    flat = model.patchify(x).flatten().nonzero().item()
    assert flat == (2 * 14 + 3) * 768 + (5 * 16 + 2) * 3 + 2


@pytest.mark.parametrize("tag", list(RATIOS))
def test_forward_encoder_matches_official(model, io, tag):
    with torch.no_grad():
        latent, mask, ids_restore = model.forward_encoder(io["imgs"], RATIOS[tag], noise=io["noise"])
    torch.testing.assert_close(latent, io[f"latent_{tag}"], atol=ATOL, rtol=1e-5)
    assert torch.equal(mask, io[f"mask_{tag}"]) and torch.equal(ids_restore, io[f"ids_restore_{tag}"])


@pytest.mark.parametrize("tag", ["r075", "r050"])
def test_pred_and_loss_match_official(weights, io, tag):
    for npl in (False, True):
        with torch.no_grad():
            loss, pred, mask = _small(weights, norm_pix_loss=npl)(io["imgs"], RATIOS[tag], noise=io["noise"])
        torch.testing.assert_close(pred[:1], io[f"pred_{tag}"], atol=ATOL, rtol=1e-5)
        torch.testing.assert_close(loss, io[f"loss_{tag}_npl{int(npl)}"], atol=ATOL, rtol=1e-5)
        assert torch.equal(mask, io[f"mask_{tag}"])


def test_random_masking_truncates_keep_count(model):
    x = torch.randn(3, 196, 8)
    kept, mask, ids_restore = model.random_masking(x, 0.3)
    assert kept.shape == (3, int(196 * 0.7), 8) == (3, 137, 8)
    assert mask.sum(dim=1).eq(196 - 137).all()
    assert torch.equal(torch.gather(mask, 1, torch.argsort(ids_restore, dim=1))[:, :137], torch.zeros(3, 137))


# ---------------------------------------------------------------- occlusion path
def _masks(num: int, seed: int) -> torch.Tensor:
    """Variable visible counts: random 30 %, a block of rows, everything occluded, nothing occluded."""
    g = torch.Generator().manual_seed(seed)
    rnd = torch.rand(196, generator=g) < 0.3
    block = torch.zeros(14, 14, dtype=torch.bool)
    block[7:, 2:12] = True  # lower-face block
    masks = [rnd, block.flatten(), torch.ones(196, dtype=torch.bool), torch.zeros(196, dtype=torch.bool)]
    return torch.stack(masks[:num])


def test_encode_visible_with_nothing_occluded_equals_official_spatial_latent(model, io):
    with torch.no_grad():
        out = model.encode_visible(io["imgs"], torch.zeros(2, 196, dtype=torch.bool))
    torch.testing.assert_close(out.tokens, io["latent_r000_spatial"], atol=ATOL, rtol=1e-5)
    assert not out.padding_mask.any() and torch.equal(out.ids_keep, torch.arange(196).expand(2, -1))


def test_encode_visible_equals_forward_encoder_on_the_same_tokens(model, io):
    token_mask = io["mask_r075"].bool()
    with torch.no_grad():
        out = model.encode_visible(io["imgs"], token_mask)
    len_keep = 49
    kept_shuffled = torch.argsort(io["ids_restore_r075"], dim=1)[:, :len_keep]  # official token order
    order = torch.argsort(kept_shuffled, dim=1)  # -> spatial order
    official = io["latent_r075"]
    expected = torch.cat([official[:, :1], torch.gather(official[:, 1:], 1, order[..., None].expand(-1, -1, 192))], 1)
    torch.testing.assert_close(out.tokens, expected, atol=ATOL, rtol=1e-5)
    assert torch.equal(out.ids_keep, kept_shuffled.sort(dim=1).values)


def test_encode_visible_batch_equals_per_sample_runs(model, io):
    imgs = torch.cat([io["imgs"], io["imgs"].flip(-1)])  # (4, 3, 224, 224)
    token_mask = _masks(4, seed=0)
    with torch.no_grad():
        batch = model.encode_visible(imgs, token_mask)
        counts = (~token_mask).sum(1)
        assert batch.tokens.shape == (4, 1 + int(counts.max()), 192) and counts[2] == 0
        for b in range(4):
            alone = model.encode_visible(imgs[b : b + 1], token_mask[b : b + 1])
            n = int(counts[b])
            assert alone.tokens.shape == (1, 1 + n, 192)
            torch.testing.assert_close(batch.tokens[b, : 1 + n], alone.tokens[0], atol=1e-5, rtol=1e-5)
            assert torch.equal(batch.ids_keep[b, :n], (~token_mask[b]).nonzero().flatten())
            assert batch.padding_mask[b].sum() == batch.tokens.shape[1] - 1 - n
            assert batch.tokens[b, 1 + n :].eq(0).all()
    assert batch.ids_keep.min() >= 0 and batch.ids_keep.max() < 196


def test_encode_visible_ignores_occluded_pixels(model, io):
    imgs = torch.cat([io["imgs"], io["imgs"]])
    token_mask = _masks(4, seed=1)
    pixel_mask = model.unpatchify(token_mask[..., None].float().expand(-1, -1, 768)).bool()  # (4, 3, 224, 224)
    scribbled = torch.where(pixel_mask, 100 * torch.randn_like(imgs), imgs)
    assert not torch.equal(scribbled, imgs)
    with torch.no_grad():
        a, b = model.encode_visible(imgs, token_mask), model.encode_visible(scribbled, token_mask)
    torch.testing.assert_close(a.tokens, b.tokens, atol=1e-6, rtol=0)


def test_encode_visible_same_with_and_without_fused_attention(weights, io):
    """timm's manual path turns the boolean mask into an additive -inf bias; SDPA takes it as is."""
    imgs, token_mask = torch.cat([io["imgs"], io["imgs"]]), _masks(4, seed=4)
    fused, manual = _small(weights), _small(weights)
    for m in manual.modules():
        if isinstance(m, Attention):
            m.fused_attn = False
    with torch.no_grad():
        a, b = fused.encode_visible(imgs, token_mask), manual.encode_visible(imgs, token_mask)
    assert any(m.fused_attn for m in fused.modules() if isinstance(m, Attention))
    torch.testing.assert_close(a.tokens, b.tokens, atol=1e-5, rtol=1e-5)


def test_encode_visible_gradients_are_finite_with_padding(weights, io):
    model = _small(weights)
    imgs = torch.cat([io["imgs"], io["imgs"]]).requires_grad_(True)
    out = model.encode_visible(imgs, _masks(4, seed=2))
    out.tokens.pow(2).sum().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert torch.isfinite(imgs.grad).all()


def test_encode_visible_rejects_bad_masks(model, io):
    with pytest.raises(ValueError, match="shape"):
        model.encode_visible(io["imgs"], torch.zeros(2, 195, dtype=torch.bool))
    with pytest.raises(TypeError, match="bool"):
        model.encode_visible(io["imgs"], torch.zeros(2, 196))


def test_visible_ids_handcomputed():
    token_mask = torch.tensor([[True, False, True, False], [True, True, True, True], [False, False, True, False]])
    ids_keep, padding = visible_ids(token_mask)
    assert ids_keep[0, :2].tolist() == [1, 3] and ids_keep[2].tolist() == [0, 1, 3]
    assert padding.tolist() == [[False, False, True], [True, True, True], [False, False, False]]


def test_reconstruct_decodes_like_official_and_pastes_only_occluded_patches(model, io):
    token_mask = io["mask_r075"].bool()
    with torch.no_grad():
        pasted, pred = model.reconstruct(io["imgs"], token_mask)
    torch.testing.assert_close(pred[:1], io["pred_r075"], atol=ATOL, rtol=1e-5)
    pixel_mask = model.unpatchify(token_mask[..., None].float().expand(-1, -1, 768)).bool()
    assert torch.equal(pasted[~pixel_mask], io["imgs"][~pixel_mask])
    assert torch.equal(pasted[pixel_mask], model.unpatchify(pred)[pixel_mask])


def test_reconstruct_with_variable_counts_equals_per_sample(model, io):
    imgs = torch.cat([io["imgs"], io["imgs"]])
    token_mask = _masks(4, seed=3)
    with torch.no_grad():
        pasted, pred = model.reconstruct(imgs, token_mask)
        for b in range(4):
            _, alone = model.reconstruct(imgs[b : b + 1], token_mask[b : b + 1])
            torch.testing.assert_close(pred[b : b + 1], alone, atol=1e-5, rtol=1e-5)
    assert torch.equal(pasted[3], imgs[3])  # nothing occluded: the image is returned as is


def test_reconstruct_refuses_norm_pix_loss_and_encoder_only(weights, io):
    with pytest.raises(ValueError, match="norm_pix_loss"):
        _small(weights, norm_pix_loss=True).reconstruct(io["imgs"], io["mask_r075"].bool())
    encoder = MaskedAutoencoderViT(SMALL, decoder=False)
    with pytest.raises(RuntimeError, match="encoder-only"):
        encoder.reconstruct(io["imgs"], io["mask_r075"].bool())


# ---------------------------------------------------------------- timm equivalence
def _timm_vit(c: MAEConfig) -> VisionTransformer:
    return VisionTransformer(
        img_size=c.img_size, patch_size=c.patch_size, embed_dim=c.embed_dim, depth=c.depth, num_heads=c.num_heads,
        mlp_ratio=c.mlp_ratio, qkv_bias=True, num_classes=0, norm_layer=partial(nn.LayerNorm, eps=1e-6),
    ).eval()  # fmt: skip


def test_timm_forward_features_equals_encode_visible(weights, io):
    encoder_sd = {k: v for k, v in weights.items() if not k.startswith(("decoder_", "mask_token"))}
    vit = _timm_vit(SMALL)
    vit.load_state_dict(encoder_sd, strict=True)
    encoder = MaskedAutoencoderViT(SMALL, decoder=False).eval()
    encoder.load_state_dict(encoder_sd, strict=True)
    with torch.no_grad():
        ours = encoder.encode_visible(io["imgs"], torch.zeros(2, 196, dtype=torch.bool)).tokens
        torch.testing.assert_close(ours, vit.forward_features(io["imgs"]), atol=ATOL, rtol=1e-5)


def test_timm_vit_base_mae_full_size_equivalence(io):
    with torch.device("meta"):  # skip both random inits; weights are filled below
        vit = timm.create_model("vit_base_patch16_224.mae", pretrained=False).eval()
        encoder = MaskedAutoencoderViT(MAE_CONFIGS["mae_vit_base_patch16"], decoder=False).eval()
    vit, encoder = vit.to_empty(device="cpu"), encoder.to_empty(device="cpu")
    assert list(vit.state_dict()) == list(encoder.state_dict())
    pool = 0.02 * torch.randn(1 << 20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for i, p in enumerate(vit.parameters()):  # distinct cheap values: a tiled pool at a per-tensor offset
            p.copy_(pool.roll(i).repeat(-(-p.numel() // pool.numel()))[: p.numel()].view_as(p) + (p.ndim == 1))
        vit.pos_embed.copy_(sincos_2d(768, 14).unsqueeze(0))
    encoder.load_state_dict(vit.state_dict(), strict=True)
    with torch.no_grad():
        ours = encoder.encode_visible(io["imgs"][:1], torch.zeros(1, 196, dtype=torch.bool)).tokens
        torch.testing.assert_close(ours, vit.forward_features(io["imgs"][:1]), atol=ATOL, rtol=1e-5)
