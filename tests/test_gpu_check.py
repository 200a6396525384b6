"""``benchmarks/gpu_check.py``, the first command on a new GPU machine, runs its whole path on the CPU here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def test_gpu_check_cpu_fallback_runs_every_stage_method_and_detect(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path), "--device", "cpu", "--max-steps", "2",
                          "--precision", "bf16-mixed"], capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["failed"] is None and report["device"] == "cpu"
    stages = report["stages"]
    assert {name.split(": ")[1] for name in stages} == {"mae", "teacher_stage1", "teacher", "teacher_occaug",
                                                        "student", "student_control"}
    assert all(s["precision"] == "bf16-mixed" and s["steps"] == 2 and s["peak_memory_mb"] > 0 for s in stages.values())
    methods = {"teacher", "teacher_occaug", "mae_recon_teacher", "student", "student_no_kd", "student_node_kd",
               "student_edge_kd", "student_random_init"}
    for precision in ("fp32", "bf16"):
        assert set(report["evaluation"][precision]["f1_patch50"]) == methods
    detect = report["detect"]
    assert detect["fp32"]["rows"] == detect["fp32_overlap"]["rows"] == detect["bf16"]["rows"] == 24  # a face a frame
    assert detect["max_abs_prob_diff_bf16_vs_fp32"] < 0.01


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_gpu_check_without_a_gpu_says_so(tmp_path):
    out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 2 and "--device cpu" in out.stderr


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_check_on_the_gpu_with_precision_auto(tmp_path):
    """On a GPU machine: the real check, every stage on cuda at ``precision: auto``."""
    out = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert all(s["device"].startswith("cuda") for s in report["stages"].values())
    assert report["detect"]["max_abs_prob_diff_bf16_vs_fp32"] < 0.02
