"""A study over several SynthFACS draws: what holds beyond the noise of one draw.

One benchmark run is one draw of identities, expressions and folds plus one training seed; a difference of a point
between two methods can be that draw's luck. ``occau bench synth --seeds 0,1,2,3,4`` runs the preset once per draw
(each draw its own faces, its own training seed) and this module reads the per-draw ``results.json`` files:

- per method and condition, the mean F1 over draws and its spread (sample standard deviation, min, max);
- per claim (``occau.reports.claims.CLAIMS``: the student against each baseline, ablation and control), the
  **paired** difference student minus baseline on the same draw, and a 95 % **t-interval** over draws
  (mean +- t_{0.975, n-1} * sd / sqrt(n)). Pairing removes what a draw does to both methods alike (easier faces,
  a better teacher), so the interval is about the difference, not about the draws. A claim is **held** when the
  interval lies above 0, **reversed** when it lies below, and **not shown** otherwise.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from occau.evaluation.methods import TEACHER
from occau.reports.claims import CLAIMS, CONDITION, METHOD, Comparison, cell

CONFIDENCE = 0.95
INTERVAL = "t"  # what kind of interval ``paired_interval`` gives, as the report names it


@dataclass(frozen=True)
class Interval:
    """Mean of paired differences with its two-sided t-interval (F1 in [0, 1]); NaN bounds for fewer than 2 draws."""

    mean: float
    low: float
    high: float
    n: int

    @property
    def verdict(self) -> str:
        if self.low > 0:
            return "held"
        if self.high < 0:
            return "reversed"
        return "not shown"


def paired_interval(differences: list[float], confidence: float = CONFIDENCE) -> Interval:
    """``mean +- t_{(1+confidence)/2, n-1} * sd / sqrt(n)`` of per-draw differences (sample sd, ddof 1)."""
    d = np.asarray(differences, dtype=np.float64)
    n = len(d)
    if n < 2:
        mean = float(d.mean()) if n else math.nan
        return Interval(mean, math.nan, math.nan, n)
    half = stats.t.ppf((1 + confidence) / 2, n - 1) * d.std(ddof=1) / math.sqrt(n)
    return Interval(float(d.mean()), float(d.mean() - half), float(d.mean() + half), n)


def mean_over_conditions(results: dict[str, Any], name: str) -> float:
    """A method's (or reference's) F1 averaged over every condition of the run."""
    return float(np.mean([cell(results, name, c)["f1_mean"] for c in results["conditions"]]))


def claim_differences(per_draw: dict[int, dict[str, Any]], comparison: Comparison,
                      over_conditions: bool = False) -> dict[int, float] | None:
    """Student minus baseline on each draw (F1 in [0, 1]), at the claim's conditions or (``over_conditions``, for a
    same-condition claim) averaged over every condition; None when a draw lacks either method."""
    out = {}
    for seed, results in per_draw.items():
        try:
            if over_conditions:
                out[seed] = (mean_over_conditions(results, comparison.method)
                             - mean_over_conditions(results, comparison.baseline))
            else:
                out[seed] = (cell(results, comparison.method, comparison.condition)["f1_mean"]
                             - cell(results, comparison.baseline, comparison.baseline_condition)["f1_mean"])
        except KeyError:
            return None
    return out


def clean_gap_per_au(per_draw: dict[int, dict[str, Any]], method: str = METHOD, teacher: str = TEACHER,
                     condition: str = CONDITION) -> dict[str, Any] | None:
    """Where the clean gap sits, per AU: ``method`` under ``condition`` minus ``teacher`` on clean faces, split into
    what the student lacks on clean faces (``method`` clean - ``teacher`` clean) and what the occlusion costs it
    (``method`` under ``condition`` - ``method`` clean); the two parts add up to the gap. Each is a mean over draws with
    its paired t-interval, in F1 [0, 1]: it tells a student that learnt less than its teacher from evidence the
    occlusion took away. None when a draw lacks either method."""
    per_au: dict[str, list[np.ndarray]] = {"gap": [], "clean_deficit": [], "occlusion_cost": []}
    try:
        for results in per_draw.values():
            student_clean = np.asarray(cell(results, method, "clean")["f1_per_au"])
            student_occluded = np.asarray(cell(results, method, condition)["f1_per_au"])
            teacher_clean = np.asarray(cell(results, teacher, "clean")["f1_per_au"])
            per_au["gap"].append(student_occluded - teacher_clean)
            per_au["clean_deficit"].append(student_clean - teacher_clean)
            per_au["occlusion_cost"].append(student_occluded - student_clean)
    except KeyError:
        return None
    parts = {}
    for part, draws in per_au.items():
        by_au = np.stack(draws)  # (draws, N)
        intervals = [paired_interval(list(column)) for column in by_au.T]
        parts[part] = [{"mean": iv.mean, "low": iv.low, "high": iv.high} for iv in intervals]
    aus = next(iter(per_draw.values())).get("aus", list(range(len(parts["gap"]))))
    return {"method": method, "teacher": teacher, "condition": condition, "aus": aus, **parts}


def results_over_draws(per_draw: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """``{seed: results.json content}`` -> the study's JSON: spread per method and condition, paired claims."""
    seeds = sorted(per_draw)
    first = per_draw[seeds[0]]
    conditions = list(first["conditions"])
    names = [*first["results"], *first.get("references", {})]
    spread = {}
    for name in names:
        spread[name] = {}
        for condition in conditions:
            try:
                values = [cell(per_draw[s], name, condition)["f1_mean"] for s in seeds]
            except KeyError:
                break
            spread[name][condition] = _spread(dict(zip(seeds, values)))
    claims = []
    for comparison in CLAIMS:
        for over_conditions in (False, True):
            if over_conditions and comparison.condition != comparison.baseline_condition:
                continue
            diffs = claim_differences(per_draw, comparison, over_conditions)
            if diffs is None:
                continue
            interval = paired_interval(list(diffs.values()))
            claims.append({"claim": comparison.claim, "method": comparison.method,
                           "baseline": comparison.baseline, "condition": comparison.condition,
                           "baseline_condition": comparison.baseline_condition,
                           "over": "all conditions" if over_conditions else comparison.condition,
                           "differences": {str(s): d for s, d in diffs.items()}, "mean": interval.mean,
                           "low": interval.low, "high": interval.high, "n": interval.n, "verdict": interval.verdict})
    return {"dataset": first["dataset"], "preset": first.get("preset"), "seeds": seeds, "conditions": conditions,
            "interval": f"{int(100 * CONFIDENCE)} % {INTERVAL}-interval over draws of paired differences",
            "spread": spread, "claims": claims, "clean_gap_per_au": clean_gap_per_au(per_draw),
            "wall_time_s": {str(s): per_draw[s].get("wall_time_s") if "invocations" in per_draw[s] else None
                            for s in seeds}}


def _spread(values: dict[int, float]) -> dict[str, Any]:
    v = np.asarray(list(values.values()))
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
            "min": float(v.min()), "max": float(v.max()), "per_draw": {str(s): x for s, x in values.items()}}


# ---------------------------------------------------------------- the report
def write_draws_report(per_draw: dict[int, dict[str, Any]], out_dir: str | Path) -> Path:
    """``draws.json``, ``draws.md`` and ``paired_differences.png`` in ``out_dir``; returns ``draws.md``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    study = results_over_draws(per_draw)
    (out_dir / "draws.json").write_text(json.dumps(study, indent=1))
    plot_paired_differences(study, out_dir / "paired_differences.png")
    md = out_dir / "draws.md"
    md.write_text(draws_markdown(study))
    return md


def draws_markdown(study: dict[str, Any]) -> str:
    seeds = study["seeds"]
    lines = [f"# A study over {len(seeds)} SynthFACS draws ({study['dataset']}, preset {study['preset']})", "",
             f"Draws (`--seeds`): {', '.join(map(str, seeds))}; each draw is its own SynthFACS sample of identities, "
             "expressions and folds and its own training seed. F1 (%) at 0.5, mean over AUs.", "",
             "## Claims: paired differences", "",
             f"Student minus baseline on the same draw, mean over draws with its {study['interval']} "
             "(mean +- t(0.975, n-1) sd / sqrt(n)). **held**: the interval lies above 0; **reversed**: below 0; "
             "**not shown**: it contains 0. Per-draw differences in draws.json. Each interval is for its own claim, "
             f"with no correction for testing {len(study['claims'])} intervals at once: at 95 % about one in twenty "
             "misses by chance, so a claim held by a hair is weaker evidence than one held by a wide margin.", "",
             "| claim | over | mean difference | 95 % interval | per draw | verdict |", "|---|---|---|---|---|---|"]
    for c in study["claims"]:
        per_draw = " ".join(f"{100 * d:+.1f}" for d in c["differences"].values())
        lines.append(f"| {c['claim']} | {c['over']} | {100 * c['mean']:+.1f} | "
                     f"[{100 * c['low']:+.1f}, {100 * c['high']:+.1f}] | {per_draw} | {c['verdict']} |")
    lines += ["", "## Every method over draws", "",
              "Mean over draws (sample sd over draws).", "",
              "| method | " + " | ".join(study["conditions"]) + " |", "|---|" + "---|" * len(study["conditions"])]
    for name, by_condition in study["spread"].items():
        cells = [f"{100 * by_condition[c]['mean']:.1f} ({100 * by_condition[c]['std']:.1f})"
                 if c in by_condition else "-" for c in study["conditions"]]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += _clean_gap_markdown(study.get("clean_gap_per_au"))
    times = {seed: t for seed, t in study["wall_time_s"].items() if t is not None}
    if times:
        per_draw = ", ".join(f"draw {seed} {t / 60:.0f}" for seed, t in times.items())
        lines += ["", f"Wall time per draw, summed over the invocations that ran it (pauses included): {per_draw} min."]
    missing = [seed for seed, t in study["wall_time_s"].items() if t is None]
    if missing:
        lines += ["", f"Wall time not recorded for draw(s) {', '.join(missing)}: run before occau kept the time of "
                  "every invocation of a resumed run (run_times.json)."]
    return "\n".join(lines) + "\n"


def _clean_gap_markdown(gap: dict[str, Any] | None) -> list[str]:
    if gap is None:
        return []

    def fmt(iv: dict[str, float]) -> str:
        return f"{100 * iv['mean']:+.1f} [{100 * iv['low']:+.1f}, {100 * iv['high']:+.1f}]"
    lines = ["", "## Where the clean gap sits, per AU", "",
             f"{gap['method']} under {gap['condition']} minus {gap['teacher']} on clean faces, split into what the "
             f"student lacks on clean faces ({gap['method']} clean - {gap['teacher']} clean) and what the occlusion "
             f"costs it ({gap['method']} {gap['condition']} - {gap['method']} clean); the parts add up to the gap. "
             "Mean over draws [95 % t-interval].", "",
             "| AU | the gap | clean deficit | occlusion cost |", "|---|---|---|---|"]
    for i, au in enumerate(gap["aus"]):
        lines.append(f"| {au} | {fmt(gap['gap'][i])} | {fmt(gap['clean_deficit'][i])} | "
                     f"{fmt(gap['occlusion_cost'][i])} |")
    return lines


def plot_paired_differences(study: dict[str, Any], path: Path) -> Path:
    """One row per claim: each draw's paired difference (dots), the mean and its 95 % interval, a line at 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    claims = [c for c in study["claims"] if c["over"] == CONDITION]
    colours = {"held": "tab:green", "reversed": "tab:red", "not shown": "tab:gray"}
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(claims) + 1.4))
    for row, c in enumerate(claims):
        y = len(claims) - 1 - row
        draws = [100 * d for d in c["differences"].values()]
        if not math.isnan(c["low"]):
            ax.plot([100 * c["low"], 100 * c["high"]], [y, y], color=colours[c["verdict"]], lw=3, alpha=0.6, zorder=1)
        ax.scatter(draws, [y + 0.18] * len(draws), s=14, color="black", alpha=0.6, zorder=2)
        ax.scatter([100 * c["mean"]], [y], s=45, color=colours[c["verdict"]], edgecolor="black", zorder=3)
    ax.axvline(0, color="black", lw=1)
    ax.set_yticks(range(len(claims)))
    ax.set_yticklabels([f"{c['claim']} ({c['verdict']})" for c in reversed(claims)], fontsize=8)
    ax.set_xlabel(f"student - baseline at {CONDITION}, F1 points (dots: draws; bar: 95 % t-interval)")
    ax.set_title(f"Paired differences over {len(study['seeds'])} SynthFACS draws", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ---------------------------------------------------------------- combining draws run apart
def load_draws(paths: list[str | Path]) -> dict[int, dict[str, Any]]:
    """Per-draw ``results.json`` files (from ``OUT/seed<s>/report/``, run by one study or several) -> ``{seed:
    results}``, keyed by each file's own ``seed``. Refuses files that cannot be read, lack a seed, repeat one, or
    belong to another dataset or preset than the first: pairing across those would compare different studies."""
    per_draw: dict[int, dict[str, Any]] = {}
    for path in map(Path, paths):
        try:
            results = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise ValueError(f"{path}: not a readable results.json ({err})") from None
        seed = results.get("seed") if isinstance(results, dict) else None
        if not isinstance(seed, int) or "results" not in results:
            raise ValueError(f"{path}: not a benchmark results.json with a draw's seed")
        if seed in per_draw:
            raise ValueError(f"{path}: draw {seed} is given twice")
        if per_draw:
            first = next(iter(per_draw.values()))
            for key in ("dataset", "preset"):
                if results.get(key) != first.get(key):
                    raise ValueError(f"{path}: {key} {results.get(key)!r}, but the first draw's is {first.get(key)!r}")
        per_draw[seed] = results
    if len(per_draw) < 2:
        raise ValueError(f"a study needs at least 2 draws for an interval, got {len(per_draw)}")
    return per_draw
