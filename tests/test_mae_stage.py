"""The MAE stage on real faces: ``occau prepare faces`` on a few generated photos, continued pretraining from an
official-format encoder-only checkpoint (asserted partial load), and ``init`` keys checked before any training."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from occau.checkpoints.io import CheckpointError, load_checkpoint
from occau.checkpoints.mae import init_mae_weights
from occau.cli import main
from occau.data.prepared import PreparedDataset
from occau.models.mae import MAEConfig, MaskedAutoencoderViT
from occau.training.config import STAGE_KINDS, load_config
from occau.data.datasets import build_face_dataset
from occau.training.run import train_stage

skimage_data = pytest.importorskip("skimage.data")

TINY = {"img_size": 32, "patch_size": 8, "embed_dim": 24, "depth": 1, "num_heads": 2, "decoder_embed_dim": 16,
        "decoder_depth": 1, "decoder_num_heads": 2, "norm_pix_loss": True}  # fmt: skip
MAE_STAGE = """
stage: mae
name: mae
data: {source: prepared, dataset: bp4d, batch_size: 2, hflip: true}
loss: {mask_ratio: 0.75}
optim: {lr: 1e-12, weight_decay: 0.05, betas: [0.9, 0.95], epochs: 1}
trainer: {accelerator: cpu, devices: 1, progress_bar: false, log_every_n_steps: 1}
"""


def _photo(shift: int, side: int = 160) -> np.ndarray:
    """The astronaut's face (BGR), shifted: each photo differs, each has one face."""
    face = cv2.cvtColor(skimage_data.astronaut(), cv2.COLOR_RGB2BGR)[20:340, 70:390]
    return np.roll(cv2.resize(face, (side, side), interpolation=cv2.INTER_AREA), shift, axis=1)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """A small collection: two identity folders, a nested folder, a photo without a face and a non-image file."""
    root = tmp_path_factory.mktemp("photos")
    for rel, shift in [("alice/a.jpg", 0), ("alice/a.png", 4), ("bob/trip/b.jpg", 8), ("c.jpg", 12)]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), _photo(shift))
    cv2.imwrite(str(root / "bob" / "wall.jpg"), np.full((160, 160, 3), 127, np.uint8))
    (root / "notes.txt").write_text("not a photo")
    return root


@pytest.fixture(scope="module")
def faces(photos: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("faces") / "prepared"
    assert main(["prepare", "faces", "--root", str(photos), "--out", str(out), "--size", "32", "--no-progress"]) == 0
    return out


def test_prepare_faces_writes_a_prepared_folder(faces: Path) -> None:
    info = json.loads((faces / "prepare.json").read_text())
    assert info["dataset"] == "faces" and info["aus"] == [] and info["size"] == 32
    summary = json.loads((faces / "summary.json").read_text())
    assert summary == {"photos": 5, "frames_in_manifest": 4, "status": {"detected": 4, "skipped": 1}}
    failures = (faces / "failures.tsv").read_text().splitlines()
    assert failures[1:] == ["bob/wall.jpg\tskipped\tno face"]
    data = PreparedDataset(faces, split="all")
    assert [r["source"] for r in data.records] == ["alice/a.jpg", "alice/a.png", "bob/trip/b.jpg", "c.jpg"]
    assert data.subjects == ("alice", "bob", ".")
    sample = data[2]
    assert sample["image"].shape == (32, 32, 3) and sample["labels"].shape == (0,)
    with pytest.raises(ValueError, match="no labels or folds"):
        PreparedDataset(faces, split="train")


def test_prepare_faces_resumes_and_refuses_other_options(photos: Path, faces: Path, tmp_path: Path) -> None:
    before = (faces / "manifest.jsonl").read_text()
    journal = faces / "work" / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:2]) + '\n{"torn')  # interrupted while writing the third record
    args = ["prepare", "faces", "--root", str(photos), "--out", str(faces), "--no-progress"]
    assert main([*args, "--size", "32"]) == 0
    assert (faces / "manifest.jsonl").read_text() == before
    assert len(journal.read_text().splitlines()) == len(lines)  # the torn record was redone, the others kept
    assert main([*args, "--size", "48"]) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["prepare", "faces", "--root", str(empty), "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert main(["prepare", "faces", "--root", str(empty), "--out", str(tmp_path / "o"), "--subjects", "F001"]) == 2


def _encoder_only_official_file(path: Path, seed: int = 1, **changes) -> dict[str, torch.Tensor]:
    """An ``mae_pretrain_vit_*.pth`` lookalike: ``{'model': encoder state_dict}`` with a mask_token (the release's
    layout), from a seeded model so that its weights differ from a fresh initialisation."""
    torch.manual_seed(seed)
    sd = MaskedAutoencoderViT(MAEConfig(**{**TINY, **changes})).state_dict()
    encoder = {k: v for k, v in sd.items() if not k.startswith("decoder_")}
    torch.save({"model": encoder}, path)
    return encoder


def test_partial_load_lists_what_starts_fresh_and_refuses_misfits(tmp_path: Path) -> None:
    encoder = _encoder_only_official_file(tmp_path / "pretrain.pth")
    torch.manual_seed(0)
    model = MaskedAutoencoderViT(MAEConfig(**TINY))
    fresh = init_mae_weights(model, tmp_path / "pretrain.pth")
    assert fresh and all(k.startswith(("decoder_", "mask_token")) for k in fresh)
    assert "mask_token" in fresh  # the official importer drops the release's mask_token
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in encoder.items() if k != "mask_token")
    _encoder_only_official_file(tmp_path / "deeper.pth", depth=2)
    with pytest.raises(CheckpointError, match="deeper.pth"):
        init_mae_weights(MaskedAutoencoderViT(MAEConfig(**TINY)), tmp_path / "deeper.pth")
    torch.save({"model": {**encoder, "blocks.0.extra": torch.zeros(1)}}, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected: blocks\.0\.extra"):
        init_mae_weights(MaskedAutoencoderViT(MAEConfig(**TINY)), tmp_path / "extra.pth")
    torch.save({"model": {k: v for k, v in encoder.items() if k != "norm.weight"}}, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"missing: norm\.weight"):
        init_mae_weights(MaskedAutoencoderViT(MAEConfig(**TINY)), tmp_path / "partial.pth")


def _mae_config(tmp_path: Path, faces: Path, *overrides: str):
    path = tmp_path / "mae.yaml"
    path.write_text(MAE_STAGE)
    model = [f"model.{k}={v}" for k, v in TINY.items()]
    return load_config(path, [f"data.root={faces}", *model, *overrides])


def test_mae_stage_pretrains_on_the_whole_collection_and_continues_from_init(faces: Path, tmp_path: Path) -> None:
    config = _mae_config(tmp_path, faces)
    assert len(build_face_dataset(config.data, "pretrain")) == 4  # every face: a collection has no folds
    encoder = _encoder_only_official_file(tmp_path / "pretrain.pth")
    continued = _mae_config(tmp_path, faces, f"init.mae={tmp_path / 'pretrain.pth'}")
    state = load_checkpoint(train_stage(continued, tmp_path / "continued")["mae"])[0]
    # lr 1e-12: training moves no weight by more than ~1e-12, so the exported encoder is the file's
    for k, v in encoder.items():
        if k != "mask_token":
            torch.testing.assert_close(state[k], v, atol=1e-9, rtol=0)
    scratch = load_checkpoint(train_stage(config, tmp_path / "scratch")["mae"])[0]
    assert not torch.equal(scratch["blocks.0.attn.qkv.weight"], encoder["blocks.0.attn.qkv.weight"])


@pytest.mark.parametrize("stage", sorted(STAGE_KINDS))
def test_unknown_init_key_fails_before_training_naming_the_allowed_ones(tmp_path: Path, stage: str) -> None:
    path = tmp_path / "stage.yaml"
    path.write_text(f"stage: {stage}\n")
    allowed = STAGE_KINDS[stage].init_roles
    assert load_config(path, [f"init.{allowed[0]}=some.safetensors"]).init == {allowed[0]: "some.safetensors"}
    expected = rf"stage.yaml: .*unknown key\(s\) \['mea'\] for stage '{stage}'; allowed: {re.escape(str(list(allowed)))}"
    with pytest.raises(ValueError, match=expected):
        load_config(path, ["init.mea=some.safetensors"])


@pytest.mark.slow
def test_mae_stage_under_two_process_ddp_on_cpu(faces: Path, tmp_path: Path) -> None:
    """2 CPU processes (gloo): the global batch of 2 is split 1 + 1, and the run continues from init.mae."""
    encoder = _encoder_only_official_file(tmp_path / "pretrain.pth")
    (tmp_path / "mae.yaml").write_text(MAE_STAGE)
    model = [f"model.{k}={v}" for k, v in TINY.items()]
    out = subprocess.run(
        [sys.executable, "-m", "occau", "train", str(tmp_path / "mae.yaml"), "--out", str(tmp_path / "ddp"),
         f"data.root={faces}", *model, f"init.mae={tmp_path / 'pretrain.pth'}", "trainer.devices=2",
         "trainer.strategy=ddp", "optim.epochs=2"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "global batch 2 = 1 per process x 2 process(es)" in out.stdout
    state, meta = load_checkpoint(tmp_path / "ddp" / "mae.safetensors")
    assert meta["training"]["trainer"]["devices"] == 2
    for k, v in encoder.items():
        if k != "mask_token":
            torch.testing.assert_close(state[k], v, atol=1e-9, rtol=0)
    metrics = (tmp_path / "ddp" / "logs" / "metrics.csv").read_text().splitlines()
    steps = {int(line.split(",")[1]) for line in metrics[1:]}
    assert max(steps) + 1 == 2 * (4 // 2)  # 2 epochs x (4 faces / 2 per step)
