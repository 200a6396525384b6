"""Safe checkpoint I/O: no pickled code ever runs, mismatches are listed, occau checkpoints describe themselves."""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from occau.checkpoints.io import CheckpointError, describe_mismatch, load_checkpoint, load_exact, load_foreign, save_checkpoint
from occau.cli import main

META = {"kind": "test", "model": {}, "input_size": [3, 8, 8], "normalization": {}, "license": "test"}


class Payload:
    """Unpickling this object would create a marker file: the proof that code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def write_malicious(path: Path, marker: Path) -> None:
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": Payload(marker)}, path)


def test_malicious_pickle_runs_no_code(tmp_path):
    bad, marker = tmp_path / "evil.pth", tmp_path / "pwned"
    write_malicious(bad, marker)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_foreign(bad)
    assert not marker.exists()
    # The plain pickle module would have run it: the test would notice if torch.load stopped being safe.
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


@pytest.mark.parametrize("kind", ["mae", "megraphau"])
def test_convert_cli_refuses_malicious_file(tmp_path, kind, capsys):
    bad, marker = tmp_path / "evil.pth", tmp_path / "pwned"
    write_malicious(bad, marker)
    extra = ["--backbone", "resnet18", "--num-aus", "12"] if kind == "megraphau" else []
    status = main(["convert", kind, str(bad), str(tmp_path / "out.safetensors"), *extra])
    assert status == 1
    assert not marker.exists() and not (tmp_path / "out.safetensors").exists()
    assert str(bad) in capsys.readouterr().err


def test_convert_cli_lists_mismatches_and_exits_nonzero(tmp_path):
    from occau.models.megraphau.model import MEGraphAU, MEGraphAUConfig

    model = MEGraphAU(MEGraphAUConfig(backbone="resnet18", num_aus=8, stage=2, img_size=64))
    src = tmp_path / "MEFARG_resnet18_DISFA_fold1.pth"
    torch.save({"epoch": 3, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, src)
    out = subprocess.run([sys.executable, "-m", "occau", "convert", "megraphau", str(src), str(tmp_path / "o.safetensors"),
                          "--backbone", "resnet18", "--num-aus", "12"], capture_output=True, text=True)
    assert out.returncode == 1
    assert "shape mismatch: head.sc" in out.stderr and "(8, 128)" in out.stderr and "(12, 128)" in out.stderr
    ok = subprocess.run([sys.executable, "-m", "occau", "convert", "megraphau", str(src), str(tmp_path / "o.safetensors"),
                         "--backbone", "resnet18", "--num-aus", "8"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    state, meta = load_checkpoint(tmp_path / "o.safetensors")
    assert meta["kind"] == "teacher" and meta["aus"] == [1, 2, 4, 6, 9, 12, 25, 26]
    assert torch.equal(state["head.sc"], model.state_dict()["head.sc"])


def test_load_exact_lists_every_problem():
    model = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    state = dict(model.state_dict())
    state.pop("1.bias")
    state["0.weight"] = torch.zeros(4, 2)
    state["extra"] = torch.zeros(1)
    problems = describe_mismatch(model, state)
    assert problems == ["missing: 1.bias (1,)", "unexpected: extra (1,)",
                        "shape mismatch: 0.weight checkpoint (4, 2) vs model (3, 2)"]
    with pytest.raises(CheckpointError, match="3 problems"):
        load_exact(model, state, "x.pth")


def test_save_and_load_round_trip_with_metadata(tmp_path):
    state = {"a": torch.arange(6.0).view(2, 3), "b": torch.ones(2, dtype=torch.int64)}
    path = save_checkpoint(tmp_path / "c.safetensors", state, META | {"aus": [1, 2]})
    loaded, meta = load_checkpoint(path)
    assert meta["aus"] == [1, 2] and meta["kind"] == "test"
    assert all(torch.equal(loaded[k], state[k]) for k in state)
    assert not list(tmp_path.glob("*.tmp"))


def test_save_requires_self_description(tmp_path):
    with pytest.raises(ValueError, match="license"):
        save_checkpoint(tmp_path / "c.safetensors", {"a": torch.zeros(1)}, {k: v for k, v in META.items() if k != "license"})


def test_foreign_safetensors_is_not_an_occau_checkpoint(tmp_path):
    from safetensors.torch import save_file

    save_file({"a": torch.zeros(1)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(CheckpointError, match="not an occau checkpoint"):
        load_checkpoint(tmp_path / "x.safetensors")
    assert torch.equal(load_foreign(tmp_path / "x.safetensors")["a"], torch.zeros(1))
