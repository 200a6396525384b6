"""Training pipeline: configs as data, deterministic data order and augmentation, resume after a crash, DDP on CPU."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from occau.checkpoints.io import load_checkpoint
from occau.training.config import RecipeChangedError, load_config, save_config
from occau.training.data import EpochSampler
from occau.data.datasets import build_face_dataset
from occau.occlusion.face_tensors import FaceTensors
from occau.training.run import train_stage

TEACHER = """
stage: teacher
name: teacher_stage1
data: {source: synthfacs, dataset: synth-bp4d, preset: smoke, batch_size: 32, eval_batch_size: 64}
model: {backbone: resnet18, num_aus: 12, stage: 1, img_size: 64}
optim: {lr: 1e-3, epochs: 2}
trainer: {accelerator: cpu, devices: 1, progress_bar: false, max_steps: -1, log_every_n_steps: 1}
"""


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("synth-cache"))


def teacher_config(tmp_path: Path, cache_dir: str, *overrides: str):
    path = tmp_path / "teacher.yaml"
    path.write_text(TEACHER)
    return load_config(path, [f"data.cache_dir={cache_dir}", *overrides])


def test_config_round_trip_and_errors(tmp_path, cache_dir):
    config = teacher_config(tmp_path, cache_dir, "optim.lr=3e-4", "data.occlusion={patch50: 1.0}")
    assert config.optim.lr == pytest.approx(3e-4) and isinstance(config.optim.lr, float)
    assert config.data.occlusion == {"patch50": 1.0}
    save_config(config, tmp_path / "saved.yaml")
    assert load_config(tmp_path / "saved.yaml") == config
    with pytest.raises(ValueError, match=r"unknown key\(s\) optim.lrr; allowed here: lr, "):
        load_config(tmp_path / "teacher.yaml", ["optim.lrr=1"])
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")


def test_sampler_encodes_epoch_and_is_deterministic():
    sampler = EpochSampler(10, seed=3)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and list(sampler) == first
    sampler.set_epoch(2)
    second = list(sampler)
    assert sorted(second) == list(range(20, 30)) and [i - 20 for i in second] != first


def test_augmentation_and_evaluation_occlusion_are_pure_functions(cache_dir, tmp_path):
    config = teacher_config(tmp_path, cache_dir)
    faces = build_face_dataset(config.data, "train")
    from occau.occlusion import RandomOcclusion

    train = FaceTensors(faces, patch_size=8, train=True, hflip=True, seed=0, with_clean=True,
                        occlusion=RandomOcclusion(["patch50", "upper", "mask"], patch_size=8))
    a, b, other_epoch = train[5], train[5], train[5 + len(faces)]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["token_mask"], b["token_mask"])
    assert not torch.equal(a["image"], other_epoch["image"])
    assert torch.equal(a["labels"], other_epoch["labels"]) and int(other_epoch["index"]) == 5
    assert a["token_mask"].any() and not torch.equal(a["image"], a["clean_image"])
    test = FaceTensors(faces, patch_size=8, condition="patch50", seed=0)
    again = FaceTensors(faces, patch_size=8, condition="patch50", seed=0)
    assert torch.equal(test[7]["token_mask"], again[7]["token_mask"]) and int(test[7]["token_mask"].sum()) == 32


def test_persistent_loader_workers_give_the_same_batches_every_epoch(cache_dir, tmp_path):
    """Two workers that live across epochs (the real-data presets' setting) load exactly the batches the main
    process loads, epoch after epoch: the epoch reaches the workers through the sampler's indices."""
    from occau.training.data import FaceDataModule

    def batches(workers: int) -> list[torch.Tensor]:
        config = teacher_config(tmp_path, cache_dir, f"data.num_workers={workers}", "data.occlusion={patch50: 1.0}")
        module = FaceDataModule(config.data, patch_size=8)
        module.setup("fit")
        loader = module.train_dataloader()
        assert loader.persistent_workers == (workers > 0)
        out = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            out += [b["image"] for b in loader][:2]
        return out

    for a, b in zip(batches(0), batches(2), strict=True):
        assert torch.equal(a, b)


class SimulatedKill(RuntimeError):
    pass


class Crash(L.Callback):
    """Simulates a killed run: dies as the second epoch starts, so only what the stage's own checkpointing wrote
    after the first epoch is there to resume from."""

    def on_train_epoch_start(self, trainer, module):
        if trainer.current_epoch == 1:
            raise SimulatedKill("killed in epoch 1")


def test_resume_after_crash_gives_the_same_weights(tmp_path, cache_dir):
    config = teacher_config(tmp_path, cache_dir)
    straight = load_checkpoint(train_stage(config, tmp_path / "straight")["teacher_stage1"])[0]
    with pytest.raises(SimulatedKill):
        train_stage(config, tmp_path / "crashed", callbacks=[Crash()])
    assert (tmp_path / "crashed" / "checkpoints" / "last.ckpt").is_file()
    changed = dataclasses.replace(config, optim=dataclasses.replace(config.optim, lr=config.optim.lr * 10))
    with pytest.raises(RecipeChangedError, match=r"crashed: trained with another recipe .*optim\.lr"):
        train_stage(changed, tmp_path / "crashed")  # another recipe would continue this run's checkpoint
    resumed = load_checkpoint(train_stage(config, tmp_path / "crashed")["teacher_stage1"])[0]
    assert straight.keys() == resumed.keys()
    worst = max(float((straight[k].double() - resumed[k].double()).abs().max()) for k in straight)
    assert worst < 1e-5, worst


@pytest.mark.slow
def test_two_process_ddp_on_cpu(tmp_path, cache_dir):
    config = tmp_path / "teacher.yaml"
    config.write_text(TEACHER)
    out = subprocess.run(
        [sys.executable, "-m", "occau", "train", str(config), "--out", str(tmp_path / "ddp"),
         f"data.cache_dir={cache_dir}", "trainer.devices=2", "trainer.strategy=ddp", "optim.epochs=1"],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    state, meta = load_checkpoint(tmp_path / "ddp" / "teacher_stage1.safetensors")
    assert meta["training"]["trainer"]["devices"] == 2
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())
    # data.batch_size 32 is the global batch: each of the 2 ranks loads 16 faces of its half of the epoch, so a step
    # sees 32 faces and an epoch has as many steps as on one process.
    assert "global batch 32 = 16 per process x 2 process(es)" in out.stdout
    metrics = (tmp_path / "ddp" / "logs" / "metrics.csv").read_text().splitlines()
    steps = {int(line.split(",")[1]) for line in metrics[1:]}
    n_train = len(build_face_dataset(load_config(config, [f"data.cache_dir={cache_dir}"]).data, "train"))
    assert max(steps) + 1 == (n_train // 2) // 16


def test_global_batch_must_divide_over_processes(tmp_path, cache_dir):
    from occau.training.run import per_process_batch

    config = teacher_config(tmp_path, cache_dir, "data.batch_size=96", "trainer.accumulate_grad_batches=2")
    assert per_process_batch(config, 1) == 48 and per_process_batch(config, 8) == 6
    with pytest.raises(ValueError, match="data.batch_size=96 is the global batch .* 5 process"):
        per_process_batch(config, 5)
