"""End-to-end: the smoke-sized SynthFACS benchmark runs every stage and writes a complete, consistent report.

This is the CI-sized run of `occau bench synth`; its numbers mean nothing, its files and their consistency do.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from occau.benchmark import load_bench_config, run_benchmark
from occau.cli import main
from occau.data.synthfacs import SynthFACS

METHODS = {"teacher", "teacher_occaug", "mae_recon_teacher", "student", "student_no_kd", "student_node_kd",
           "student_edge_kd", "student_random_init"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench-smoke")
    start = time.perf_counter()
    report = run_benchmark(load_bench_config("smoke"), out, log=lambda message: None)
    return out, report, time.perf_counter() - start


def test_results_json_is_complete(smoke_run):
    out, report, _ = smoke_run
    results = json.loads((report / "results.json").read_text())
    bench = load_bench_config("smoke")
    assert results["dataset"] == "synth-bp4d" and results["aus"] == [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
    assert results["folds"] == [1] and results["preset"] == "smoke" and "git_commit" in results["software"]
    assert set(results["results"]) == METHODS and set(results["timings"]) == METHODS
    for method, by_condition in results["results"].items():
        assert list(by_condition) == bench.conditions
        for cell in by_condition.values():
            assert len(cell["f1_per_au"]) == 12 and all(0.0 <= f <= 1.0 for f in cell["f1_per_au"])
            assert cell["f1_mean"] == pytest.approx(sum(cell["f1_per_au"]) / 12)
            assert list(cell["f1_per_fold"]) == ["1"] and cell["f1_per_fold"]["1"] == pytest.approx(cell["f1_mean"])
            assert cell["f1_per_au_per_fold"]["1"] == pytest.approx(cell["f1_per_au"])
    assert all(t["ms_per_face"] > 0 for t in results["timings"].values())
    for name in ("results.md", "f1_vs_patch_ratio.png", "per_au_block_heatmaps.png", "inference_time.png"):
        assert (report / name).stat().st_size > 0, name
    markdown = (report / "results.md").read_text()
    assert all(f"| {m} |" in markdown for m in METHODS) and "AU24" in markdown
    assert "| *all AUs present (reference)* |" in markdown and "| *WA-optimal constant (reference)* |" in markdown


def test_unknown_occlusion_axis_is_in_the_report(smoke_run):
    """The methods that take a mask, again with each estimated mask; at 'clean' the learnt estimate of the shipped
    estimator calls (almost) nothing covered, and 'none' never does."""
    _, report, _ = smoke_run
    results = json.loads((report / "results.json").read_text())
    axis = results["unknown_occlusion"]
    bench = load_bench_config("smoke")
    assert list(axis["results"]) == list(bench.eval.mask_estimates) == ["learnt", "colour", "none"]
    takes_mask = METHODS - {"teacher", "teacher_occaug"}
    for name, by_method in axis["results"].items():
        assert set(by_method) == takes_mask, name
        assert all(list(by_condition) == bench.conditions for by_condition in by_method.values())
    assert axis["tokens"]["none"]["patch50"]["recall"] == 0.0 and axis["tokens"]["none"]["clean"]["false_cover"] == 0
    assert axis["tokens"]["learnt"]["clean"]["false_cover"] < 0.05
    assert axis["tokens"]["learnt"]["patch50"]["recall"] > 0.5  # the shipped estimator finds random patches
    assert "## Without a mask" in (report / "results.md").read_text()
    assert (report / "f1_without_mask.png").stat().st_size > 0


def test_references_are_scored_on_the_evaluated_test_faces(smoke_run):
    """All AUs present scores 2q / (1 + q) per AU of test base rate q, on the same every-2nd test faces."""
    out, report, _ = smoke_run
    results = json.loads((report / "results.json").read_text())
    refs = results["references"]
    test = SynthFACS("smoke", "synth-bp4d", split="test", fold=1, progress=False)
    q = test.labels[::2].mean(0)  # (12,) every label known in SynthFACS
    assert refs["all_present"]["f1_per_au"] == pytest.approx(2 * q / (1 + q))
    assert refs["all_present"]["n_frames"] == results["results"]["teacher"]["clean"]["n_frames"]
    train = SynthFACS("smoke", "synth-bp4d", split="train", fold=1, progress=False)
    assert refs["wa_constant"]["train_base_rate_per_fold"]["1"] == pytest.approx(train.labels.mean(0))
    present = train.labels.mean(0) >= 1 / 3
    assert refs["wa_constant"]["f1_per_au"] == pytest.approx(np.where(present, 2 * q / (1 + q), 0.0))


def test_clean_teacher_is_unaffected_by_the_clean_condition_of_a_student(smoke_run):
    """Occlusion is a pure function of the sample: a student at 'clean' sees every token, the teacher every pixel."""
    out, report, _ = smoke_run
    fold = json.loads((out / "fold1" / "fold_results.json").read_text())
    assert fold["results"]["teacher"]["clean"]["n_frames"] == fold["results"]["student"]["clean"]["n_frames"]


def test_evaluate_cli_reproduces_the_benchmark_numbers(smoke_run, tmp_path):
    out, report, _ = smoke_run
    fold = out / "fold1"
    status = main([
        "evaluate", "--dataset", "synth-bp4d", "--preset", "smoke", "--data", str(out / "data"), "--folds", "1",
        "--conditions", "clean,patch50", "--stride", "2", "--out", str(tmp_path),
        "--method", f"teacher=teacher:{fold}/teacher_stage2/teacher.safetensors",
        "--method", f"student=student:{fold}/student/student.safetensors",
        "--method", f"mae_recon_teacher=recon:{out}/mae/mae.safetensors+{fold}/teacher_stage2/teacher.safetensors",
        "--mask-estimates", "none",
    ])
    assert status == 0
    again_all = json.loads((tmp_path / "results.json").read_text())
    bench_all = json.loads((report / "results.json").read_text())
    again, bench = again_all["results"], bench_all["results"]
    for method in ("teacher", "student", "mae_recon_teacher"):
        for condition in ("clean", "patch50"):
            assert again[method][condition]["f1_per_au"] == pytest.approx(bench[method][condition]["f1_per_au"])
    no_mask, bench_no_mask = again_all["unknown_occlusion"]["results"], bench_all["unknown_occlusion"]["results"]
    assert list(no_mask) == ["none"] and set(no_mask["none"]) == {"student", "mae_recon_teacher"}
    for method in ("student", "mae_recon_teacher"):
        assert no_mask["none"][method]["patch50"]["f1_per_au"] == pytest.approx(
            bench_no_mask["none"][method]["patch50"]["f1_per_au"])
    assert main(["evaluate", "--method", f"t=teacher:{fold}/teacher_stage2/teacher.safetensors", "--mask-estimates",
                 "oracle", "--out", str(tmp_path / "bad")]) == 2
    again_refs = json.loads((tmp_path / "results.json").read_text())["references"]
    assert again_refs == json.loads((report / "results.json").read_text())["references"]


def test_benchmark_resumes_without_retraining(smoke_run):
    out, report, first_time = smoke_run
    before = (report / "results.json").read_text()
    start = time.perf_counter()
    run_benchmark(load_bench_config("smoke"), out, log=lambda message: None)
    assert time.perf_counter() - start < first_time / 3
    after, first = json.loads((report / "results.json").read_text()), json.loads(before)
    assert after["results"] == first["results"]
    # the report's time is what the results cost over every invocation, not the seconds of the resuming one
    assert after["invocations"] == first["invocations"] + 1
    assert after["wall_time_s"] >= first["wall_time_s"]


def _benchmark_script(name: str):
    """A script of benchmarks/ (not a package) imported as a module, so a test can call its ``main``."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_student_design_script_runs_an_experiment_at_smoke_size(smoke_run, tmp_path):
    """benchmarks/student_design.py, the script whose validation table chose the student, on the smoke run's teacher
    and render cache for 2 steps: it trains, scores on validation subjects and writes its table."""
    design = _benchmark_script("student_design")
    out, _, _ = smoke_run
    design.main(["--bench-dir", str(out), "--preset", "smoke", "--experiments", "head", "--steps", "2",
                 "--val-stride", "4", "--results", str(tmp_path / "results"), "--out", str(tmp_path / "runs")])
    rows = [json.loads(line) for line in (tmp_path / "results" / "student_design.jsonl").read_text().splitlines()]
    assert [r["experiment"] for r in rows] == ["grid_frozen_fresh_head"] and rows[0]["steps"] == 2
    assert 0 <= rows[0]["val_clean"] <= 100 and rows[0]["all_present"] > 0
    # the clean teacher is scored on the same faces (the clean gap's reference), per AU too, but is not a row
    assert 0 <= rows[0]["teacher_val_clean"] <= 100 and len(rows[0]["teacher_val_clean_per_au"]) == 12
    assert len(rows[0]["val_patch50_per_au"]) == 12 and [r["student"] for r in rows] == ["student"]
    assert "grid_frozen_fresh_head" in (tmp_path / "results" / "student_design.md").read_text()


def test_teacher_length_script_records_a_validation_curve_per_epoch(smoke_run, tmp_path):
    """benchmarks/teacher_length.py, the script whose validation curve chose the teacher's length, on the smoke data:
    both teacher stages train for the epochs asked, stage 2 starts from stage 1, one F1 per epoch is recorded."""
    length = _benchmark_script("teacher_length")
    out, _, _ = smoke_run
    length.main(["--bench-dir", str(out), "--preset", "smoke", "--stage1-epochs", "2", "--stage2-epochs", "1",
                 "--results", str(tmp_path / "results"), "--out", str(tmp_path / "runs")])
    rows = [json.loads(line) for line in (tmp_path / "results" / "teacher_length.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epochs"]) for r in rows] == [("teacher_stage1", 2), ("teacher_stage2", 1)]
    assert [len(r["val_f1_per_epoch"]) for r in rows] == [2, 1]
    assert all(0 <= f <= 100 for r in rows for f in r["val_f1_per_epoch"])
    assert all(r["best"] == max(r["val_f1_per_epoch"]) for r in rows)
    assert rows[1]["init"] == {"stage1": "teacher_stage1_2ep"}
    assert "teacher_stage2" in (tmp_path / "results" / "teacher_length_runs.md").read_text()
