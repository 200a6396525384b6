"""Training stages on a prepared fake BP4D download (6 subjects, 2 per part, 64-px crops): ``data.fold=all`` for
a model to deploy, and the real-data benchmark end to end with no test subject in any stage's training data."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_trees import write_download

from occau.checkpoints.io import load_checkpoint
from occau.cli import main
from occau.data.prepared import PreparedDataset
from occau.training.config import load_config
from occau.training.data import build_face_dataset
from occau.training.run import train_stage

pytest.importorskip("skimage.data")

SUBJECTS = ("F001", "M007", "M011", "F003", "F007", "F015")  # parts 1, 1, 2, 2, 3, 3
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
