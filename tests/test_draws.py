"""The study over SynthFACS draws: the paired t-interval by hand, the claims' verdicts, the report and its command."""

from __future__ import annotations

import json
import math

import pytest

from occau.cli import main as cli
from occau.reports.draws import draws_markdown, paired_interval, results_over_draws

T_975 = {2: 4.302653, 4: 2.776445}  # Student's t quantiles (tables): t(0.975, df)


def test_paired_interval_hand_computed():
    # d = 1, 3, 2 points: mean 2, sd 1, half-width t(0.975, 2) * 1 / sqrt(3) = 2.4841
    iv = paired_interval([0.01, 0.03, 0.02])
    assert iv.n == 3 and iv.mean == pytest.approx(0.02)
    assert (iv.low, iv.high) == pytest.approx((0.02 - T_975[2] * 0.01 / math.sqrt(3),
                                               0.02 + T_975[2] * 0.01 / math.sqrt(3)), abs=1e-7)
    assert iv.verdict == "not shown"
    # 5, 6, 7, 5, 7 points: mean 6, sd 1 -> [4.758, 7.242]: held; the mirror image is reversed
    held = paired_interval([0.05, 0.06, 0.07, 0.05, 0.07])
    assert (held.low, held.high) == pytest.approx((0.06 - T_975[4] * 0.01 / math.sqrt(5),
                                                   0.06 + T_975[4] * 0.01 / math.sqrt(5)), abs=1e-7)
    assert held.verdict == "held" and paired_interval([-0.05, -0.06, -0.07, -0.05, -0.07]).verdict == "reversed"
    one = paired_interval([0.3])
    assert one.mean == 0.3 and math.isnan(one.low) and one.verdict == "not shown"


def _results(student: float, no_kd: float, teacher: float, all_present: float) -> dict:
    cell = lambda f: {"f1_mean": f, "f1_per_au": [f], "f1_per_fold": {"1": f}, "f1_per_au_per_fold": {"1": [f]},
                      "n_frames": 10}  # noqa: E731
    return {"dataset": "synth-bp4d", "preset": "quick", "conditions": ["clean", "patch50"],
            "results": {"student": {"clean": cell(student + 0.05), "patch50": cell(student)},
                        "student_no_kd": {"clean": cell(no_kd + 0.05), "patch50": cell(no_kd)},
                        "teacher": {"clean": cell(teacher), "patch50": cell(teacher - 0.2)}},
            "references": {"all_present": cell(all_present)}}


def test_claims_are_paired_per_draw():
    """Draw 2 is easier for every method: unpaired, student and no-KD overlap; paired, the student wins each draw by
    1 point (+- 0), so KD is held, and the clean-teacher claim (student 5 below on each draw) is reversed."""
    per_draw = {0: _results(0.50, 0.49, 0.55, 0.45), 1: _results(0.60, 0.59, 0.65, 0.45),
                2: _results(0.70, 0.69, 0.75, 0.45)}
    study = results_over_draws(per_draw)
    by = {(c["baseline"], c["baseline_condition"], c["over"]): c for c in study["claims"]}
    kd = by[("student_no_kd", "patch50", "patch50")]
    assert kd["mean"] == pytest.approx(0.01) and kd["verdict"] == "held"
    assert kd["differences"] == pytest.approx({"0": 0.01, "1": 0.01, "2": 0.01})
    assert by[("student_no_kd", "patch50", "all conditions")]["mean"] == pytest.approx(0.01)
    assert by[("teacher", "clean", "patch50")]["verdict"] == "reversed"
    assert by[("all_present", "patch50", "patch50")]["mean"] == pytest.approx(0.15)
    assert study["spread"]["student"]["patch50"]["mean"] == pytest.approx(0.60)
    assert study["spread"]["student"]["patch50"]["std"] == pytest.approx(0.10)
    assert not any(c["baseline"] == "student_node_kd" for c in study["claims"])  # absent methods are skipped


def test_wall_time_per_draw_counts_only_recorded_invocations():
    """A draw whose results.json predates run_times.json holds the seconds of its last (maybe resuming) invocation
    only: the report says it was not recorded instead of quoting it."""
    per_draw = {0: _results(0.50, 0.49, 0.55, 0.45), 1: _results(0.60, 0.59, 0.65, 0.45)}
    per_draw[0].update(wall_time_s=3000.0, invocations=2)
    per_draw[1].update(wall_time_s=0.1)
    markdown = draws_markdown(results_over_draws(per_draw))
    assert "draw 0 50 min." in markdown and "not recorded for draw(s) 1:" in markdown


def test_study_command_on_the_smoke_preset_with_two_draws(tmp_path):
    out = tmp_path / "draws"
    assert cli(["bench", "synth", "--preset", "smoke", "--seeds", "0,1", "--out", str(out),
                "trainer.max_steps=2"]) == 0
    study = json.loads((out / "report" / "draws.json").read_text())
    assert study["seeds"] == [0, 1] and study["preset"] == "smoke"
    for seed in (0, 1):
        results = json.loads((out / f"seed{seed}" / "report" / "results.json").read_text())
        assert results["seed"] == seed
        student = results["results"]["student"]["patch50"]["f1_mean"]
        assert study["spread"]["student"]["patch50"]["per_draw"][str(seed)] == pytest.approx(student)
    claims = {c["baseline"] for c in study["claims"]}
    assert {"student_no_kd", "student_node_kd", "student_edge_kd", "student_random_init", "mae_recon_teacher",
            "teacher_occaug", "all_present"} <= claims
    assert all(c["n"] == 2 and c["verdict"] in ("held", "not shown", "reversed") for c in study["claims"])
    assert (out / "report" / "paired_differences.png").stat().st_size > 5000
    assert "| claim | over | mean difference | 95 % interval |" in (out / "report" / "draws.md").read_text()
    # a different draw is different faces: the two runs do not share their data
    assert (out / "seed0" / "data").is_dir() and (out / "seed1" / "data").is_dir()
    # the same report from the draws' results.json alone (draws run apart, or run folders lost)
    files = [str(out / f"seed{seed}" / "report" / "results.json") for seed in (1, 0)]
    assert cli(["draws", *files, "--out", str(tmp_path / "combined")]) == 0
    combined = json.loads((tmp_path / "combined" / "draws.json").read_text())
    assert combined["claims"] == study["claims"] and combined["spread"] == study["spread"]


def test_combining_draws_refuses_what_cannot_be_paired(tmp_path, capsys):
    def write(name: str, seed, **changes) -> str:
        results = {**_results(0.5, 0.49, 0.55, 0.45), "seed": seed, **changes}
        path = tmp_path / name
        path.write_text(json.dumps(results))
        return str(path)

    a, b = write("a.json", 0), write("b.json", 1)
    (tmp_path / "broken.json").write_text("{ not json")
    cases = {"twice": ([a, write("c.json", 0)], "draw 0 is given twice"),
             "preset": ([a, write("d.json", 2, preset="full")], "preset 'full', but the first draw's is 'quick'"),
             "no seed": ([a, write("e.json", None)], "e.json: not a benchmark results.json with a draw's seed"),
             "unreadable": ([a, str(tmp_path / "broken.json")], "broken.json: not a readable results.json"),
             "one draw": ([a], "at least 2 draws")}
    for name, (files, message) in cases.items():
        assert cli(["draws", *files, "--out", str(tmp_path / "out")]) == 2, name
        assert message in capsys.readouterr().err, name
    assert not (tmp_path / "out").exists()  # nothing written from a refused set
    assert cli(["draws", a, b, "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "draws.json").read_text())["seeds"] == [0, 1]


def test_clean_gap_per_au_splits_into_clean_deficit_and_occlusion_cost():
    """Two AUs, two draws, by hand. AU a: the student matches the teacher on clean faces and loses 10 / 20 points
    to occlusion; AU b: it lacks 4 / 6 points on clean faces and loses nothing to occlusion. The parts add up to the
    gap draw by draw, and each is a paired interval over draws."""
    def draw(student_clean, student_occluded, teacher_clean):
        cell = lambda per_au: {"f1_mean": sum(per_au) / 2, "f1_per_au": per_au}  # noqa: E731
        return {"dataset": "synth-bp4d", "preset": "study", "aus": [15, 23], "conditions": ["clean", "patch50"],
                "results": {"student": {"clean": cell(student_clean), "patch50": cell(student_occluded)},
                            "teacher": {"clean": cell(teacher_clean), "patch50": cell(teacher_clean)}}}
    per_draw = {0: draw([0.6, 0.50], [0.5, 0.50], [0.6, 0.54]), 1: draw([0.7, 0.64], [0.5, 0.64], [0.7, 0.70])}
    gap = results_over_draws(per_draw)["clean_gap_per_au"]
    assert gap["aus"] == [15, 23]
    assert [iv["mean"] for iv in gap["occlusion_cost"]] == pytest.approx([-0.15, 0.0])
    assert [iv["mean"] for iv in gap["clean_deficit"]] == pytest.approx([0.0, -0.05])
    assert [iv["mean"] for iv in gap["gap"]] == pytest.approx([-0.15, -0.05])
    # AU a's occlusion cost: d = -10, -20 points: mean -15, sd 7.071, half-width t(0.975, 1) * 7.071 / sqrt(2)
    half = 12.706205 * 0.0707107 / math.sqrt(2)
    assert (gap["occlusion_cost"][0]["low"], gap["occlusion_cost"][0]["high"]) == pytest.approx(
        (-0.15 - half, -0.15 + half), abs=1e-6)
    assert "| 23 | -5.0 [" in draws_markdown(results_over_draws(per_draw))
