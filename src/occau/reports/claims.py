"""The paper's claims, checked against a results file: one row per comparison, with the numbers and a verdict.

Every claim compares the method (the student under 50 % random patches) with one baseline; a claim "holds" when the
student's F1 averaged over folds is higher than the baseline's *and* than the *all AUs present* reference (a win
between two methods that both score below a predictor that ignores the image shows nothing). Each row also says in
how many folds the student was higher, so a win carried by one fold is visible. Method names are the benchmark's
(``occau bench``); a baseline may also be a reference (``results["references"]``); claims whose methods are absent
from a results file are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from occau.evaluation.methods import (RECONSTRUCT, SCRATCH_VIT, STUDENT, STUDENT_EDGE_KD, STUDENT_NO_KD,
                                     STUDENT_NODE_KD, STUDENT_RANDOM_INIT, TEACHER, TEACHER_OCCAUG)
from occau.evaluation.references import REFERENCE_LABELS

METHOD = STUDENT
CONDITION = "patch50"
FLOOR = "all_present"  # the reference a credited claim must also beat


@dataclass(frozen=True)
class Comparison:
    """``method`` under ``condition`` vs ``baseline`` under ``baseline_condition``."""

    claim: str
    method: str
    condition: str
    baseline: str
    baseline_condition: str


CLAIMS = (
    Comparison("student under 50 % patches vs the teacher on clean faces", METHOD, CONDITION, TEACHER, "clean"),
    Comparison("vs the teacher on the same occluded faces", METHOD, CONDITION, TEACHER, CONDITION),
    Comparison("vs MAE-reconstruct-then-teacher", METHOD, CONDITION, RECONSTRUCT, CONDITION),
    Comparison("vs the occlusion-augmented teacher", METHOD, CONDITION, TEACHER_OCCAUG, CONDITION),
    Comparison("vs all AUs present (reference)", METHOD, CONDITION, FLOOR, CONDITION),
    Comparison("KD ablation: vs the student without KD", METHOD, CONDITION, STUDENT_NO_KD, CONDITION),
    Comparison("KD ablation: vs the student with node KD only", METHOD, CONDITION, STUDENT_NODE_KD, CONDITION),
    Comparison("KD ablation: vs the student with edge KD only", METHOD, CONDITION, STUDENT_EDGE_KD, CONDITION),
    # The paper's premise: the MAE's latent space is worth mining (vs the same student on a random-init encoder).
    Comparison("premise: vs the no-pretraining control", METHOD, CONDITION, STUDENT_RANDOM_INIT, CONDITION),
    Comparison("premise: vs a scratch ViT with a linear grid readout", METHOD, CONDITION, SCRATCH_VIT, CONDITION),
)


@dataclass(frozen=True)
class ClaimResult:
    comparison: Comparison
    method_f1: float  # mean over AUs and folds, in [0, 1]
    baseline_f1: float
    folds_won: int  # folds in which the method's mean F1 is strictly higher
    folds: int
    floor_f1: float | None = None  # "all AUs present" on the same faces; None for results without references

    @property
    def delta(self) -> float:
        return self.method_f1 - self.baseline_f1

    @property
    def above_floor(self) -> bool | None:
        return None if self.floor_f1 is None else self.method_f1 > self.floor_f1

    @property
    def holds(self) -> bool:
        return self.delta > 0 and self.above_floor is not False


def check_claims(results: dict[str, Any], claims: tuple[Comparison, ...] = CLAIMS) -> list[ClaimResult]:
    """Evaluate every claim whose two methods and conditions are in ``results`` (the results.json layout)."""
    floor = results.get("references", {}).get(FLOOR)
    out = []
    for c in claims:
        try:
            ours, theirs = cell(results, c.method, c.condition), cell(results, c.baseline, c.baseline_condition)
        except KeyError:
            continue
        per_fold = [(ours["f1_per_fold"][k], theirs["f1_per_fold"][k]) for k in ours["f1_per_fold"]]
        won = sum(a > b for a, b in per_fold)
        out.append(ClaimResult(c, ours["f1_mean"], theirs["f1_mean"], won, len(per_fold),
                               None if floor is None else floor["f1_mean"]))
    return out


def cell(results: dict[str, Any], name: str, condition: str) -> dict[str, Any]:
    """A method's cell under a condition, or a reference's (the same under every condition)."""
    references = results.get("references", {})
    return references[name] if name in references else results["results"][name][condition]


def _describe(name: str, condition: str, results: dict[str, Any]) -> str:
    return REFERENCE_LABELS[name] if name in results.get("references", {}) else f"{name} {condition}"


def speed_ratio(results: dict[str, Any], method: str = METHOD, baseline: str = RECONSTRUCT) -> float | None:
    """How many times faster per face ``method`` is than ``baseline`` (None without timings for both)."""
    timings = results.get("timings") or {}
    if method not in timings or baseline not in timings:
        return None
    return timings[baseline]["ms_per_face"] / timings[method]["ms_per_face"]


def claims_markdown(results: dict[str, Any]) -> list[str]:
    """The claims as a Markdown table (empty when no claim applies)."""
    rows = check_claims(results)
    if not rows:
        return []
    lines = ["| claim | method F1 | baseline F1 | difference | folds won | above all AUs present | holds |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        c = r.comparison
        floor = {None: "-", True: "yes", False: "no"}[r.above_floor]
        lines.append(
            f"| {c.claim} | {c.method} {c.condition} {100 * r.method_f1:.1f} | "
            f"{_describe(c.baseline, c.baseline_condition, results)} {100 * r.baseline_f1:.1f} | "
            f"{100 * r.delta:+.1f} | {r.folds_won}/{r.folds} | {floor} | {'yes' if r.holds else 'no'} |"
        )
    ratio = speed_ratio(results)
    if ratio is not None:
        ours, theirs = (results["timings"][m]["ms_per_face"] for m in (METHOD, RECONSTRUCT))
        speed = f"Time per face: the student is {ratio:.1f}x as fast as MAE-reconstruct-then-teacher "
        lines += ["", speed + f"({ours:.2f} vs {theirs:.2f} ms)."]
    return lines
