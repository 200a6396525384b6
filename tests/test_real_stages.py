"""Training stages on a prepared fake BP4D download (6 subjects, 2 per part, 64-px crops): ``data.fold=all`` for
a model to deploy, and the real-data benchmark end to end with no test subject in any stage's training data."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_trees import write_download

import torch

from occau.checkpoints.io import load_checkpoint
from occau.cli import main
from occau.data.folds import fold_split
from occau.data.prepared import PreparedDataset
from occau.models.mae import MAEConfig, MaskedAutoencoderViT
from occau.training.config import StageConfig, load_config
from occau.data.datasets import build_face_dataset
from occau.training.run import train_stage

pytest.importorskip("skimage.data")

# parts 1, 1, 2, 2, 3, 3; F006 and F003 are validation subjects of folds 1-2 and 3 (occau.data.folds.fold_split)
SUBJECTS = ("F001", "M007", "M011", "F003", "F007", "F006")
TEACHER = """
stage: teacher
name: teacher_stage1
data: {source: prepared, dataset: bp4d, batch_size: 16, eval_batch_size: 32}
model: {backbone: resnet18, num_aus: 12, stage: 1, img_size: 64}
optim: {lr: 1e-3, epochs: 1}
trainer: {accelerator: cpu, devices: 1, progress_bar: false, log_every_n_steps: 1}
"""


@pytest.fixture(scope="module")
def bp4d(reference_dir: Path, tmp_path_factory) -> Path:
    raw = write_download(tmp_path_factory.mktemp("download"), reference_dir, bp4d=SUBJECTS)
    out = tmp_path_factory.mktemp("bp4d") / "prepared"
    argv = ["prepare", "bp4d", "--root", str(raw / "BP4D"), "--out", str(out), "--size", "64", "--workers", "1",
            "--no-progress", "--subjects", *SUBJECTS]  # fmt: skip
    assert main(argv) == 0
    return out


def test_fold_all_trains_on_every_subject_with_nothing_held_out(bp4d: Path, tmp_path: Path) -> None:
    path = tmp_path / "teacher.yaml"
    path.write_text(TEACHER)
    config = load_config(path, [f"data.root={bp4d}", "data.fold=all"])
    assert config.data.fold == "all"
    assert set(PreparedDataset(bp4d, "train", fold="all").subjects) == set(SUBJECTS)
    for split in ("val", "test"):
        with pytest.raises(ValueError, match=f"fold=all .* no '{split}' subjects"):
            build_face_dataset(config.data, split)
    exported = train_stage(config, tmp_path / "deploy")["teacher_stage1"]
    _, meta = load_checkpoint(exported)
    assert meta["data"]["fold"] == "all" and meta["data"]["test_part"] is None
    assert meta["selection"]["val_f1"] is None  # no validation subjects: the last epoch's weights
    with pytest.raises(ValueError, match="data.fold must be 1, 2, 3 or all"):
        load_config(path, [f"data.root={bp4d}", "data.fold=4"])
    with pytest.raises(ValueError, match="for prepared real data"):
        load_config(path, ["data.source=synthfacs", "data.fold=all"])


TINY_MAE = {"img_size": 64, "patch_size": 8, "embed_dim": 24, "depth": 1, "num_heads": 2, "decoder_embed_dim": 16,
            "decoder_depth": 1, "decoder_num_heads": 2, "norm_pix_loss": False}  # fmt: skip


def _toy(mae_file: Path) -> list[str]:
    """Overrides that shrink the shipped real/bench_bp4d.yaml to seconds on a CPU; its structure (stages, init
    roles, data flow) stays the shipped one."""
    teacher = "{backbone: resnet18, stage: %d, img_size: 64}"
    mae_model = "{" + ", ".join(f"{k}: {str(v).lower()}" for k, v in TINY_MAE.items()) + "}"
    return [
        "trainer={accelerator: cpu, devices: 1, progress_bar: false, log_every_n_steps: 1}",
        "data.num_workers=0", "data.batch_size=16", "data.eval_batch_size=32", "data.patch_size=8",
        "conditions=[clean, patch50, mask]",
        "eval={stride: 4, batch_size: 32, fill: black, timing_batch_size: 4, timing_repeats: 1}",
        f"stages.mae.init.mae={mae_file}", f"stages.mae.model={mae_model}", "stages.mae.data.batch_size=16",
        "stages.teacher_stage1.init={}", f"stages.teacher_stage1.model={teacher % 1}",
        f"stages.teacher_stage2.model={teacher % 2}", f"stages.teacher_occaug.model={teacher % 2}",
        "stages.student.model={embed_dim: 24, dim: 128, num_heads: 2, depth: 1, edge_depth: 0}",
        *[f"stages.{s}.optim.epochs=1" for s in ("mae", "teacher_stage1", "teacher_stage2", "teacher_occaug", "student")],
        "stages.mae.optim.warmup_epochs=0", "stages.student.optim.warmup_epochs=0",
    ]  # fmt: skip


def _learned_from(config: StageConfig) -> set[str]:
    """Subjects whose faces a stage trains on or selects its weights with, through the code path training uses."""
    if config.stage == "mae":
        return set(build_face_dataset(config.data, "pretrain").subjects)
    return set(build_face_dataset(config.data, "train").subjects) | set(build_face_dataset(config.data, "val").subjects)


@pytest.fixture(scope="module")
def bench(bp4d: Path, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    torch.manual_seed(0)
    torch.save({"model": MaskedAutoencoderViT(MAEConfig(**TINY_MAE)).state_dict()}, out / "mae_visualize_tiny.pth")
    argv = ["bench", "bp4d", "--data", str(bp4d), "--preset", "real/bench_bp4d.yaml", "--out", str(out / "run"),
            *_toy(out / "mae_visualize_tiny.pth")]  # fmt: skip
    assert main(argv) == 0
    return out / "run"


@pytest.mark.slow
def test_real_bench_runs_end_to_end_on_the_fake_bp4d_tree(bench: Path) -> None:
    results = (bench / "report" / "results.md").read_text()
    for method in ("teacher", "teacher_occaug", "mae_recon_teacher", "student", "student_no_kd"):
        assert method in results, method
    assert not (bench / "mae").exists()  # no MAE shared across folds: each fold pretrains its own
    maes = [bench / f"fold{k}" / "mae" / "mae.safetensors" for k in (1, 2, 3)]
    assert all(p.is_file() for p in maes)
    students = [load_config(bench / f"fold{k}" / "student" / "config.yaml") for k in (1, 2, 3)]
    assert [Path(c.init["mae"]) for c in students] == maes  # each fold's students read their own fold's MAE


@pytest.mark.slow
def test_no_stage_trains_on_its_folds_test_subjects(bench: Path) -> None:
    stages = 0
    for k in (1, 2, 3):
        test = set(fold_split("bp4d", k).test) & set(SUBJECTS)
        assert test
        for config_file in sorted((bench / f"fold{k}").glob("*/config.yaml")):
            config = load_config(config_file)
            learned = _learned_from(config)
            assert learned and not learned & test, f"{config_file}: trained on test subjects {sorted(learned & test)}"
            stages += 1
        student = load_config(bench / f"fold{k}" / "student" / "config.yaml")
        mae_run = load_config(Path(student.init["mae"]).parent / "config.yaml")
        assert not _learned_from(mae_run) & test
    assert stages == 3 * 5  # mae, teacher_stage1, teacher_stage2, teacher_occaug, student per fold


def test_mae_is_shared_only_when_its_faces_are_outside_every_fold(bp4d: Path, tmp_path: Path) -> None:
    from occau.benchmark import _mae_for, load_bench_config, mae_is_shared, stage_config

    preset = load_bench_config("real/bench_bp4d.yaml", [f"data.root={bp4d}"])
    assert not mae_is_shared(stage_config(preset, "mae", fold=1))
    faces = tmp_path / "faces"
    faces.mkdir()
    (faces / "prepare.json").write_text('{"dataset": "faces"}')
    collection = load_bench_config("real/bench_bp4d.yaml", [f"data.root={bp4d}", f"stages.mae.data.root={faces}"])
    assert mae_is_shared(stage_config(collection, "mae", fold=2))
    given = load_bench_config("real/bench_bp4d.yaml", ["mae_checkpoint=checkpoints/mae.safetensors"])
    assert _mae_for(given, 3, tmp_path, print) == Path("checkpoints/mae.safetensors")
    assert stage_config(preset, "teacher_stage1", 1, init={}).init == {"backbone": "checkpoints/resnet50-19c8e357.pth"}
