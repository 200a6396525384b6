"""Official ME-GraphAU checkpoint containers at full size (random weights): convert, load, compare exactly."""

from __future__ import annotations

import re

import pytest
import torch
import torchvision

from occau.checkpoints.io import CheckpointError, load_checkpoint, save_checkpoint
from occau.config import from_dict
from occau.checkpoints.megraphau import (
    FOLD_NOTE,
    LICENSE,
    convert_megraphau,
    empty_megraphau,
    load_backbone_weights,
    load_megraphau,
)
from occau.models.megraphau import MEGraphAU, MEGraphAUConfig

R50_BP4D = MEGraphAUConfig("resnet50", num_aus=12, stage=2)
R50_DISFA_STAGE1 = MEGraphAUConfig("resnet50", num_aus=8, stage=1, neighbor_num=3)
SWIN_B_BP4D = MEGraphAUConfig("swin_transformer_base", num_aus=12, stage=2)


def _random_model(config: MEGraphAUConfig, seed: int = 0) -> MEGraphAU:
    """Uninitialised model filled with random values: every tensor, BN statistics included, differs."""
    g = torch.Generator().manual_seed(seed)
    model = empty_megraphau(config)
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                v.copy_(
                    torch.rand(v.shape, generator=g) + 0.5 if "running_var" in k else torch.randn(v.shape, generator=g)
                )
            elif k.endswith("num_batches_tracked"):
                v.fill_(7)
    return model


def _microsoft_swin_names(model: MEGraphAU) -> dict[str, torch.Tensor]:
    """Official (Microsoft Swin) layout: downsample at the end of stages 0..2, index/mask buffers stored."""
    sd = dict(model.state_dict())
    sd.update({k: v for k, v in model.named_buffers() if k.endswith((".relative_position_index", ".attn_mask"))})
    down = re.compile(r"^backbone\.layers\.(\d+)\.downsample\.")
    return {down.sub(lambda m: f"backbone.layers.{int(m.group(1)) - 1}.downsample.", k): v for k, v in sd.items()}


def _save_official(path, state_dict, prefix: str = "") -> None:
    torch.save(
        {"epoch": 5, "state_dict": {prefix + k: v for k, v in state_dict.items()}, "optimizer": {"state": {}}}, path
    )


def _assert_same_weights(a: MEGraphAU, b: MEGraphAU) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.fixture(scope="module")
def r50_bp4d_file(tmp_path_factory):
    model = _random_model(R50_BP4D)
    path = tmp_path_factory.mktemp("official") / "MEFARG_resnet50_BP4D_fold1.pth"
    _save_official(path, model.state_dict(), prefix="module.")
    return model, path


def test_resnet50_stage2_with_module_prefix(r50_bp4d_file, tmp_path):
    source, path = r50_bp4d_file
    assert len(source.state_dict()) == 461  # UPSTREAM.md 2.5: MEFL resnet50 BP4D
    dst = convert_megraphau(path, tmp_path / "teacher.safetensors", backbone="resnet50", num_aus=12)
    _state, meta = load_checkpoint(dst)
    assert meta["kind"] == "teacher" and meta["license"] == LICENSE and meta["note"] == FOLD_NOTE
    assert meta["source"] == "MEFARG_resnet50_BP4D_fold1.pth"
    assert meta["aus"] == [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
    assert meta["input_size"] == [3, 224, 224] and meta["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert meta["arch"] == "megraphau" and from_dict(MEGraphAUConfig, meta["model"]) == R50_BP4D
    loaded = load_megraphau(dst)  # config from the checkpoint itself
    assert loaded.config == R50_BP4D and not loaded.training
    _assert_same_weights(source, loaded)
    _assert_same_weights(source, load_megraphau(path, R50_BP4D))  # the .pth directly


def test_resnet50_stage1_without_prefix(tmp_path):
    source = _random_model(R50_DISFA_STAGE1, seed=1)
    assert len(source.state_dict()) == 391  # UPSTREAM.md 2.5: ANFL resnet50 DISFA
    path = tmp_path / "stage1.pth"
    _save_official(path, source.state_dict())
    dst = convert_megraphau(path, tmp_path / "s1.safetensors", backbone="resnet50", num_aus=8, stage=1)
    loaded = load_megraphau(dst)
    assert loaded.config.neighbor_num == 3  # DISFA's K by default
    assert load_checkpoint(dst)[1]["aus"] == [1, 2, 4, 6, 9, 12, 25, 26]
    _assert_same_weights(source, loaded)


def test_swin_base_stage2_microsoft_names(tmp_path):
    source = _random_model(SWIN_B_BP4D, seed=2)
    official = _microsoft_swin_names(source)
    assert len(official) == 505  # UPSTREAM.md 2.5: MEFL Swin-B BP4D, Microsoft names with buffers
    assert "backbone.layers.0.downsample.reduction.weight" in official
    assert official["backbone.layers.0.blocks.1.attn_mask"].shape == (64, 49, 49)
    path = tmp_path / "swin.pth"
    _save_official(path, official, prefix="module.")
    _assert_same_weights(source, load_megraphau(path, SWIN_B_BP4D))


def test_mismatched_num_aus_or_backbone_lists_the_keys(r50_bp4d_file, tmp_path):
    _, path = r50_bp4d_file
    with pytest.raises(CheckpointError, match=r"shape mismatch: head\.sc checkpoint \(12, 512\) vs model \(8, 512\)"):
        convert_megraphau(path, tmp_path / "x.safetensors", backbone="resnet50", num_aus=8)
    with pytest.raises(CheckpointError, match=r"missing: backbone\.layer3\.6\.conv1\.weight"):
        convert_megraphau(path, tmp_path / "x.safetensors", backbone="resnet101", num_aus=12)
    with pytest.raises(CheckpointError, match=r"\(60 problems\):\n  missing: head\.gnn\.U\.weight"):
        convert_megraphau(path, tmp_path / "x.safetensors", backbone="resnet50", num_aus=12, stage=1)
    with pytest.raises(CheckpointError, match="pass a MEGraphAUConfig"):
        load_megraphau(path)
    assert not (tmp_path / "x.safetensors").exists()
    meta = {"kind": "mae", "model": {}, "input_size": [3, 224, 224], "normalization": {}, "license": "x"}
    save_checkpoint(tmp_path / "mae.safetensors", {"w": torch.zeros(1)}, meta)
    with pytest.raises(CheckpointError, match="not a ME-GraphAU checkpoint"):
        load_megraphau(tmp_path / "mae.safetensors")


def test_imagenet_resnet50_init(tmp_path):
    torch.manual_seed(3)
    tv = torchvision.models.resnet50()  # torchvision's bare state dict, as resnet50-19c8e357.pth
    torch.save(tv.state_dict(), tmp_path / "resnet50.pth")
    model = empty_megraphau(R50_BP4D)
    assert load_backbone_weights(model, tmp_path / "resnet50.pth") == ["fc.bias", "fc.weight"]
    own = model.backbone.state_dict()
    assert set(own) == set(tv.state_dict()) - {"fc.weight", "fc.bias"}
    for k, v in own.items():
        assert torch.equal(v, tv.state_dict()[k]), k


def test_imagenet_swin_init_microsoft_file(tmp_path):
    source = _random_model(MEGraphAUConfig("swin_transformer_tiny"), seed=4)
    official = {
        k.removeprefix("backbone."): v for k, v in _microsoft_swin_names(source).items() if k.startswith("backbone.")
    }
    official.update({"head.weight": torch.randn(1000, 768), "head.bias": torch.randn(1000)})
    torch.save({"model": official}, tmp_path / "swin_tiny_patch4_window7_224.pth")  # Microsoft's release layout
    model = empty_megraphau(MEGraphAUConfig("swin_transformer_tiny"))
    assert load_backbone_weights(model, tmp_path / "swin_tiny_patch4_window7_224.pth") == ["head.bias", "head.weight"]
    for k, v in source.backbone.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[k], v), k
    # a buffer from another window size / resolution is refused, not silently dropped
    official["layers.2.blocks.3.attn_mask"] = torch.zeros(4, 49, 49)
    torch.save({"model": official}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"\['layers\.2\.blocks\.3\.attn_mask'\]"):
        load_backbone_weights(model, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match=r"ResNetTokens \(310 problems\):\n  missing: conv1\.weight"):
        load_backbone_weights(
            empty_megraphau(MEGraphAUConfig("resnet18")), tmp_path / "swin_tiny_patch4_window7_224.pth"
        )


def _microsoft_attn_mask(size: int, window: int = 7, shift: int = 3) -> torch.Tensor:
    """Shifted-window mask as Microsoft's Swin computes it: 9 regions, -100 between different regions."""
    img = torch.zeros(size, size)
    cuts = (slice(0, -window), slice(-window, -shift), slice(-shift, None))
    for i, (hs, ws) in enumerate((h, w) for h in cuts for w in cuts):
        img[hs, ws] = i
    win = img.view(size // window, window, size // window, window).permute(0, 2, 1, 3).reshape(-1, window * window)
    diff = win[:, None, :] - win[:, :, None]  # (nW, 49, 49)
    return torch.zeros_like(diff).masked_fill(diff != 0, -100.0)


def test_timm_swin_has_microsoft_layout():
    """What makes the name mapping sufficient: same buffers and the same 2x2 patch-merging order as Microsoft."""
    from occau.models.megraphau.backbones import SwinTokens

    swin = SwinTokens(embed_dim=8, depths=(2, 2, 2, 2), num_heads=(1, 1, 1, 1))
    coords = torch.stack(torch.meshgrid(torch.arange(7), torch.arange(7), indexing="ij")).flatten(1)  # (2, 49)
    rel = (coords[:, :, None] - coords[:, None, :]) + 6  # (2, 49, 49), shifted to start at 0
    assert torch.equal(swin.layers[1].blocks[0].attn.relative_position_index, rel[0] * 13 + rel[1])
    for stage, size in [(0, 56), (1, 28), (2, 14)]:
        assert torch.equal(swin.layers[stage].blocks[1].attn_mask, _microsoft_attn_mask(size)), stage
    assert swin.layers[3].blocks[1].attn_mask is None  # 7x7 grid: no shift, as in Microsoft's code
    merge = swin.layers[1].downsample.eval()
    x = torch.randn(1, 4, 4, 8)  # (B, H, W, C); Microsoft concatenates (h0 w0, h1 w0, h0 w1, h1 w1)
    ms = torch.cat([x[:, 0::2, 0::2], x[:, 1::2, 0::2], x[:, 0::2, 1::2], x[:, 1::2, 1::2]], dim=-1)
    torch.testing.assert_close(merge(x), merge.reduction(merge.norm(ms)))
