"""Shipping a pretrained SynthFACS MAE into the package: only an MAE fit to ship gets in, under the project's licence."""

from __future__ import annotations

import pytest
import torch

from occau.checkpoints.io import load_checkpoint, save_checkpoint
from occau.checkpoints.mae import load_mae, mae_meta
from occau.checkpoints.shipped import SHIPPED_LICENSE, ship_mae
from occau.models.mae import MAEConfig, MaskedAutoencoderViT

TINY = MAEConfig(img_size=32, patch_size=8, embed_dim=24, depth=1, num_heads=2, decoder_embed_dim=16,
                 decoder_depth=1, decoder_num_heads=2)
PROBE = {"random_init": {"clean": 49.6, "patch50": 47.3}, "epochs": [{"epoch": 1, "clean": 51.0, "patch50": 48.0}]}


def _pretrained(tmp_path, decoder: bool = True, preset: str = "mae-pool", probe=PROBE):
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(TINY, decoder=decoder)
    meta = mae_meta(model, "tiny", "weights trained by occau") | {
        "data": {"source": "synthfacs", "dataset": "synth-bp4d", "preset": preset}}
    if probe is not None:
        meta["probe"] = probe
    return save_checkpoint(tmp_path / f"mae_{decoder}_{preset}_{probe is None}.safetensors", model.state_dict(), meta)


def test_ship_mae_keeps_weights_and_sets_the_licence(tmp_path):
    src = _pretrained(tmp_path)
    out = ship_mae(src, tmp_path / "shipped.safetensors")
    state, meta = load_checkpoint(out)
    assert meta["license"] == SHIPPED_LICENSE and meta["probe"] == PROBE and meta["shipped_from"] == src.name
    original = load_mae(src).state_dict()
    assert all(torch.equal(state[k], v) for k, v in original.items())
    assert load_mae(out).has_decoder  # the reconstruct baseline can paste from it


@pytest.mark.parametrize("what, kwargs", [("no decoder", {"decoder": False}),
                                          ("not synthfacs/mae-pool", {"preset": "quick"}),
                                          ("no AU-probe curve", {"probe": None})])
def test_ship_mae_refuses_what_is_not_fit(tmp_path, what, kwargs):
    with pytest.raises(ValueError, match=what):
        ship_mae(_pretrained(tmp_path, **kwargs), tmp_path / "shipped.safetensors")
    assert not (tmp_path / "shipped.safetensors").exists()


def test_ship_mae_command_ships_and_draws_the_probe_curve(tmp_path):
    from occau.cli import main

    src = _pretrained(tmp_path)
    assert main(["convert", "ship-mae", str(src), str(tmp_path / "shipped.safetensors")]) == 0
    assert load_checkpoint(tmp_path / "shipped.safetensors")[1]["license"] == SHIPPED_LICENSE
    png = src.with_name("probe.png")
    assert png.is_file() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["convert", "ship-mae", str(_pretrained(tmp_path, probe=None)), str(tmp_path / "x.safetensors")]) == 1


def test_the_shipped_mae_loads_and_describes_itself():
    """The MAE every SynthFACS preset starts from: in the package, under 32 MB, decoder included, with its recipe,
    training data (the mae-pool preset), licence and AU-probe curve (next to the random-init control) in its metadata."""
    from occau.checkpoints.shipped import MAX_SHIPPED_BYTES, SYNTHFACS_MAE, shipped_weights
    from occau.models.mae import MAE_CONFIGS

    path = shipped_weights(SYNTHFACS_MAE)
    assert path.stat().st_size <= MAX_SHIPPED_BYTES
    _, meta = load_checkpoint(path)
    mae = load_mae(path)
    assert mae.has_decoder and mae.config == MAE_CONFIGS["mae_vit_tiny_patch8_64"]
    assert meta["license"] == SHIPPED_LICENSE
    assert (meta["data"]["source"], meta["data"]["preset"]) == ("synthfacs", "mae-pool")
    assert meta["training"]["stage"] == "mae" and meta["training"]["data"]["preset"] == "mae-pool"
    probe = meta["probe"]
    assert set(probe["random_init"]) == {"clean", "patch50"} and probe["epochs"]
    assert [e["epoch"] for e in probe["epochs"]] == list(range(1, meta["training"]["optim"]["epochs"] + 1))
    with torch.no_grad():
        mask = torch.zeros(2, 64, dtype=torch.bool)
        mask[1, ::2] = True
        latents = mae.encode_visible(torch.randn(2, 3, 64, 64), mask)
        pasted, _ = mae.reconstruct(torch.randn(2, 3, 64, 64), mask)
    assert torch.isfinite(latents.tokens).all() and torch.isfinite(pasted).all()


def test_shipped_files_carry_no_folder_of_the_machine_that_trained_them():
    import json

    from occau.checkpoints.io import read_meta
    from occau.checkpoints.shipped import OCCLUSION_ESTIMATOR, SYNTHFACS_MAE, shipped_weights, without_machine_paths

    for name in (SYNTHFACS_MAE, OCCLUSION_ESTIMATOR):
        text = json.dumps(read_meta(shipped_weights(name)))
        assert '"/' not in text, name  # no absolute path anywhere in the metadata
    meta = {"training": {"data": {"cache_dir": "/home/me/cache", "root": "data/bp4d"}}, "runs": [{"root": "/x"}]}
    assert without_machine_paths(meta) == {"training": {"data": {"cache_dir": None, "root": "data/bp4d"}},
                                           "runs": [{"root": None}]}
