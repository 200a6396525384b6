"""The claims table: hand-made results with known winners and losers per fold."""

from __future__ import annotations

import pytest

from occau.reports.claims import check_claims, claims_markdown, speed_ratio
from occau.reports.results import results_markdown


def _entry(per_fold: dict[str, float]) -> dict:
    mean = sum(per_fold.values()) / len(per_fold)
    return {"f1_mean": mean, "f1_per_au": [mean, mean], "f1_per_fold": per_fold, "n_frames": 10}


def _results() -> dict:
    folds = ("1", "2", "3")

    def cell(*values: float) -> dict:
        return _entry(dict(zip(folds, values)))

    table = {
        "teacher": {"clean": cell(0.60, 0.60, 0.60), "patch50": cell(0.40, 0.40, 0.40)},
        "mae_recon_teacher": {"clean": cell(0.60, 0.60, 0.60), "patch50": cell(0.50, 0.44, 0.44)},
        "student": {"clean": cell(0.50, 0.50, 0.50), "patch50": cell(0.45, 0.45, 0.45)},
        "student_no_kd": {"clean": cell(0.5, 0.5, 0.5), "patch50": cell(0.46, 0.44, 0.44)},
    }
    timings = {m: {"ms_per_face": ms, "condition": "patch50", "batch_size": 8, "threads": 1, "device": "cpu",
                   "input_size": 64}
               for m, ms in (("teacher", 2.0), ("mae_recon_teacher", 6.0), ("student", 1.5), ("student_no_kd", 1.5))}
    return {"dataset": "synth-bp4d", "aus": [1, 2], "folds": [1, 2, 3], "preset": "t", "results": table,
            "timings": timings}


def test_claims_compare_means_and_count_folds():
    rows = {r.comparison.baseline + "/" + r.comparison.baseline_condition: r for r in check_claims(_results())}
    # teacher_occaug and the node/edge-only students are absent: those claims are skipped, not invented
    assert set(rows) == {"teacher/clean", "teacher/patch50", "mae_recon_teacher/patch50", "student_no_kd/patch50"}
    clean = rows["teacher/clean"]
    assert abs(clean.delta - (0.45 - 0.60)) < 1e-12 and not clean.holds and clean.folds_won == 0
    occluded = rows["teacher/patch50"]
    assert occluded.holds and occluded.folds_won == 3
    recon = rows["mae_recon_teacher/patch50"]  # mean 0.46: the student (0.45) loses on average, wins folds 2 and 3
    assert not recon.holds and recon.folds_won == 2 and recon.folds == 3
    no_kd = rows["student_no_kd/patch50"]  # mean 0.4467: KD helps on average but loses fold 1
    assert no_kd.holds and no_kd.folds_won == 2


def test_speed_ratio_and_markdown():
    results = _results()
    assert speed_ratio(results) == 4.0
    assert speed_ratio({"results": {}}) is None
    table = "\n".join(claims_markdown(results))
    assert "| vs MAE-reconstruct-then-teacher | student patch50 45.0 | mae_recon_teacher patch50 46.0 | -1.0 | 2/3 | - | no |" in table
    assert "4.0x as fast" in table
    assert "The paper's claims, checked" in results_markdown(results)


def test_no_student_no_claims():
    results = _results()
    del results["results"]["student"]
    assert claims_markdown(results) == []
    assert "claims" not in results_markdown(results)


def _with_references() -> dict:
    """The hand-made results plus references: the student (45.0 at patch50) beats the teacher (40.0) but not
    all AUs present (47.0 = 0.46, 0.47, 0.48 over folds)."""
    results = _results()
    results["references"] = {"all_present": _entry({"1": 0.46, "2": 0.47, "3": 0.48}),
                             "wa_constant": _entry({"1": 0.30, "2": 0.30, "3": 0.33})}
    return results


def test_claims_need_the_student_above_all_aus_present():
    rows = {r.comparison.claim: r for r in check_claims(_with_references())}
    occluded = rows["vs the teacher on the same occluded faces"]
    assert occluded.delta > 0 and occluded.folds_won == 3  # beats the baseline in every fold...
    assert occluded.floor_f1 == 0.47 and occluded.above_floor is False and not occluded.holds  # ...but not credited
    floor = rows["vs all AUs present (reference)"]
    assert abs(floor.delta - (0.45 - 0.47)) < 1e-12 and floor.folds_won == 0 and not floor.holds
    table = "\n".join(claims_markdown(_with_references()))
    assert "| above all AUs present | holds |" in table
    assert ("| vs the teacher on the same occluded faces | student patch50 45.0 | teacher patch50 40.0 | +5.0 | 3/3 "
            "| no | no |") in table
    assert ("| vs all AUs present (reference) | student patch50 45.0 | all AUs present 47.0 | -2.0 | 0/3 "
            "| no | no |") in table
    lowered = _with_references()
    lowered["references"]["all_present"] = _entry({"1": 0.42, "2": 0.43, "3": 0.44})  # now the student is above
    rows = {r.comparison.claim: r for r in check_claims(lowered)}
    assert rows["vs the teacher on the same occluded faces"].holds
    assert rows["vs all AUs present (reference)"].holds and rows["vs all AUs present (reference)"].folds_won == 3


def test_results_markdown_has_reference_rows_and_per_fold_tables():
    markdown = results_markdown(_with_references())
    # the main table: one column per condition (clean, patch50), the references the same in both, never bold
    assert "| *all AUs present (reference)* | 47.0 | 47.0 |" in markdown
    assert "| *WA-optimal constant (reference)* | 31.0 | 31.0 |" in markdown
    assert "| mae_recon_teacher | **60.0** | **46.0** |" in markdown  # the best method is bold, the reference above not
    # per-AU tables (two AUs + Avg) and per-fold tables (3 folds + mean) for clean and patch50
    assert "## patch50: F1 (%) per AU, mean over folds" in markdown and "| method | AU01 | AU02 | Avg |" in markdown
    assert "## clean: mean F1 (%) per fold" in markdown and "| method | fold 1 | fold 2 | fold 3 | mean |" in markdown
    assert "| mae_recon_teacher | **50.0** | 44.0 | 44.0 | **46.0** |" in markdown  # patch50 per fold
    assert "| *all AUs present (reference)* | 46.0 | 47.0 | 48.0 | 47.0 |" in markdown
    assert "| *WA-optimal constant (reference)* | 31.0 | 31.0 | 31.0 |" in markdown  # per-AU row: AU01, AU02, Avg


def test_results_markdown_other_conditions_carry_the_folds_in_a_column():
    results = _with_references()
    results["results"] = {m: {**by_c, "upper": by_c["patch50"]} for m, by_c in results["results"].items()}
    markdown = results_markdown(results)
    assert "### upper" in markdown and "| method | AU01 | AU02 | Avg | per fold |" in markdown
    assert "| teacher_occaug |" not in markdown
    assert "| student_no_kd | 44.7 | 44.7 | 44.7 | 46.0 / 44.0 / 44.0 |" in markdown
    assert "\n## upper" not in markdown  # only the headline conditions get their own per-fold tables


def test_reference_lines_are_drawn_and_labelled(tmp_path):
    import matplotlib.pyplot as plt

    from occau.reports.plots import _reference_lines, plot_all

    fig, ax = plt.subplots()
    _reference_lines(ax, _with_references())
    lines = {line.get_label(): line.get_ydata()[0] for line in ax.get_lines()}
    plt.close(fig)
    assert lines == {"all AUs present (47.0, reference)": pytest.approx(47.0),
                     "WA-optimal constant (31.0, reference)": pytest.approx(31.0)}
    made = plot_all(_with_references(), tmp_path)
    assert [p.name for p in made] == ["f1_vs_patch_ratio.png", "per_au_block_heatmaps.png", "inference_time.png"]
    assert all(p.stat().st_size > 0 for p in made)
