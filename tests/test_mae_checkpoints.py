"""MAE checkpoint importers: full-size ViT-B/16 files in every official container, and the ways a file can misfit."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
from safetensors.torch import save_file

from occau.checkpoints.io import CheckpointError, load_checkpoint
from occau.checkpoints.mae import (
    OFFICIAL_LICENSE,
    UNKNOWN_LICENSE,
    convert_mae,
    infer_arch,
    load_mae,
    read_mae,
    resolve_arch,
)
from occau.models.mae import MAE_CONFIGS, MaskedAutoencoderViT
from occau.models.pos_embed import sincos_2d

BASE = MAE_CONFIGS["mae_vit_base_patch16"]
TINY = MAE_CONFIGS["mae_vit_tiny_patch8_112"]


def _shapes(config, decoder: bool = True) -> dict[str, torch.Size]:
    with torch.device("meta"):
        return {k: v.shape for k, v in MaskedAutoencoderViT(config, decoder=decoder).state_dict().items()}


def _random_state_dict(config, seed: int = 0) -> dict[str, torch.Tensor]:
    """Distinct values per key, cheaply: each tensor tiles a window, at a key-specific offset, of one random pool."""
    size = 1 << 20
    pool = torch.randn(2 * size, generator=torch.Generator().manual_seed(seed))
    sd = {}
    for i, (key, shape) in enumerate(_shapes(config).items()):
        n, start = math.prod(shape), (7919 * (i + 1)) % size
        window = pool[start : start + size]
        sd[key] = (window[:n].clone() if n <= size else window.repeat(-(-n // size))[:n]).reshape(shape)
    grid = config.grid_size
    sd["pos_embed"] = sincos_2d(config.embed_dim, grid).unsqueeze(0)  # fixed tables, as in the releases
    sd["decoder_pos_embed"] = sincos_2d(config.decoder_embed_dim, grid).unsqueeze(0)
    return sd


def _encoder_part(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if not k.startswith(("decoder_", "mask_token"))}


def _assert_same(model: MaskedAutoencoderViT, expected: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert list(got) == list(expected)
    for k, v in expected.items():
        assert torch.equal(got[k], v), k


@pytest.fixture(scope="module")
def base_sd() -> dict[str, torch.Tensor]:
    return _random_state_dict(BASE)


# ---------------------------------------------------------------- full-size ViT-B/16, each container
def test_official_pretrain_container_loads_encoder_only(base_sd, tmp_path):
    src = tmp_path / "mae_pretrain_vit_base.pth"
    encoder = _encoder_part(base_sd)
    torch.save({"model": {**encoder, "mask_token": base_sd["mask_token"]}}, src)
    imported = read_mae(src)
    assert (imported.format, imported.dropped) == ("official-pretrain", ("mask_token",))
    assert imported.license == OFFICIAL_LICENSE
    assert infer_arch(imported.state_dict, src) == ("mae_vit_base_patch16", BASE)  # so arch may be omitted
    model = load_mae(src, arch="vit_base_patch16")
    assert not model.has_decoder and model.config == BASE
    _assert_same(model, encoder)


def test_official_visualize_container_converts_and_reloads(base_sd, tmp_path):
    src, dst = tmp_path / "mae_visualize_vit_base.pth", tmp_path / "mae_base.safetensors"
    torch.save({"model": base_sd}, src)
    assert convert_mae(src, dst, arch="mae_vit_base_patch16") == dst
    _, meta = load_checkpoint(dst)
    assert meta["kind"] == "mae" and meta["arch"] == "mae_vit_base_patch16" and meta["has_decoder"] is True
    assert meta["model"]["embed_dim"] == 768 and meta["input_size"] == [3, 224, 224]
    assert meta["license"] == OFFICIAL_LICENSE and meta["source"] == src.name
    assert meta["normalization"] == {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
    model = load_mae(dst)  # the occau checkpoint carries its config
    assert model.has_decoder and model.config == BASE
    _assert_same(model, base_sd)


def test_timm_safetensors_loads(base_sd, tmp_path):
    src = tmp_path / "model.safetensors"  # timm/vit_base_patch16_224.mae on the hub
    encoder = _encoder_part(base_sd)
    save_file(encoder, str(src))
    assert read_mae(src).format == "timm"
    model = load_mae(src, arch="vit_base_patch16_224.mae")
    assert not model.has_decoder
    _assert_same(model, encoder)


def test_vit_large_file_into_vit_base_fails(tmp_path):
    """The file's tensors share one small storage (torch.save writes it once): a 300 M-parameter layout for free."""
    storage = torch.zeros(4 * 1024 * 1024)
    shapes = _shapes(MAE_CONFIGS["mae_vit_large_patch16"], decoder=False)
    src = tmp_path / "mae_pretrain_vit_large.pth"
    torch.save({"model": {k: storage[: math.prod(s)].view(s) for k, s in shapes.items()}}, src)
    with pytest.raises(CheckpointError, match=r"'embed_dim': 1024, 'depth': 24.*mae_vit_base_patch16 has") as err:
        load_mae(src, arch="vit_base_patch16")
    assert src.name in str(err.value)


# ---------------------------------------------------------------- small presets: misfits and variants
def test_wrong_shape_and_missing_key_are_named(tmp_path):
    sd = _random_state_dict(TINY)
    del sd["blocks.3.mlp.fc2.bias"]
    sd["decoder_pred.weight"] = sd["decoder_pred.weight"][:-1]
    src = tmp_path / "broken.pth"
    torch.save({"model": sd}, src)
    with pytest.raises(CheckpointError) as err:
        load_mae(src, arch="mae_vit_tiny_patch8_112")
    msg = str(err.value)
    assert "missing: blocks.3.mlp.fc2.bias (192,)" in msg
    assert "shape mismatch: decoder_pred.weight checkpoint (191, 128) vs model (192, 128)" in msg
    assert "broken.pth" in msg and "2 problems" in msg


def test_training_script_output_with_ddp_prefix(tmp_path):
    sd = _random_state_dict(TINY)
    src = tmp_path / "checkpoint-799.pth"
    args = argparse.Namespace(model="mae_vit_tiny_patch8_112", norm_pix_loss=False)
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}, "optimizer": {}, "epoch": 799, "args": args}, src)
    imported = read_mae(src)
    assert imported.format == "official-visualize" and imported.license == UNKNOWN_LICENSE
    _assert_same(load_mae(src, arch="mae_vit_tiny_patch8_112"), sd)


def test_occau_checkpoint_round_trip_and_regrid(tmp_path):
    sd = _random_state_dict(TINY)
    src, dst = tmp_path / "tiny.pth", tmp_path / "tiny.safetensors"
    torch.save({"model": sd}, src)
    convert_mae(src, dst, arch="vit_tiny_patch8_112")
    assert load_checkpoint(dst)[1]["license"] == OFFICIAL_LICENSE
    small = load_mae(dst, arch="mae_vit_tiny_patch8_64")  # same weights, 8x8 grid instead of 14x14
    assert small.config.img_size == 64 and small.pos_embed.shape == (1, 65, 192)
    assert torch.equal(small.pos_embed[0], sincos_2d(192, 8))
    assert torch.equal(small.decoder_pos_embed[0], sincos_2d(128, 8))
    assert torch.equal(small.blocks[5].mlp.fc1.weight, sd["blocks.5.mlp.fc1.weight"])
    with torch.no_grad():
        loss, pred, _ = small(torch.randn(1, 3, 64, 64), 0.75)
    assert pred.shape == (1, 64, 192) and torch.isfinite(loss)
    with pytest.raises(CheckpointError, match="not the requested"):
        load_mae(dst, arch="mae_vit_base_patch16")


def test_timm_classifier_head_is_refused(tmp_path):
    sd = _encoder_part(_random_state_dict(TINY))
    src = tmp_path / "finetuned.safetensors"
    save_file({**sd, "head.weight": torch.zeros(12, 192), "head.bias": torch.zeros(12)}, str(src))
    with pytest.raises(CheckpointError, match="head.weight"):
        load_mae(src, arch="mae_vit_tiny_patch8_112")


def test_resolve_arch_accepts_all_spellings():
    for name in ("vit_base_patch16", "mae_vit_base_patch16", "vit_base_patch16_224.mae"):
        assert resolve_arch(name) == ("mae_vit_base_patch16", BASE)
    assert resolve_arch(TINY)[0] == "mae_vit_tiny_patch8_112"
    with pytest.raises(ValueError, match="mae_vit_large_patch16"):
        resolve_arch("vit_giant_patch14")
