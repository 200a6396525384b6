"""Result files of an evaluation (PROTOCOL §5): ``results.json`` for machines, ``results.md`` for people.

Numbers are F1 in [0, 1] in JSON and percent with one decimal in Markdown, as ME-GraphAU's tables print them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from occau.aus import au_name
from occau.evaluation.references import REFERENCE_LABELS
from occau.reports.claims import claims_markdown
from occau.reports.plots import plot_all

HEADLINE_CONDITIONS = ("clean", "patch50")  # per-AU and per-fold tables in results.md (the paper's headline)
REFERENCES_NOTE = (
    " Rows in italics are references scored on the same test faces and folds: *all AUs present* predicts every AU on"
    " every face; *WA-optimal constant* is the constant output that minimises the WA loss given the training split's"
    " base rate of each AU (present iff that rate is at least 1/3). Neither looks at the image, so each is the same"
    " under every condition."
)


def write_report(results: dict[str, Any], out_dir: str | Path) -> Path:
    """The report of an evaluation: ``results.json``, ``results.md`` and the plots; returns ``results.md``."""
    _, md_path = write_results(out_dir, results)
    plot_all(results, out_dir)
    return md_path


def write_results(out_dir: str | Path, results: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md``.

    Layout of ``results`` (F1 in [0, 1], folds as string keys): ``results[method][condition]`` and
    ``references[name]`` (``all_present``, ``wa_constant``; the same under every condition) are cells
    ``{"f1_mean", "f1_per_au", "f1_per_fold": {fold: mean}, "f1_per_au_per_fold": {fold: [per AU]}, "n_frames"}``,
    means over folds first; ``wa_constant`` adds ``train_base_rate_per_fold`` and ``output_per_fold`` (per AU).
    Next to them: ``dataset``, ``aus``, ``folds``, ``conditions``, ``timings[method]`` and provenance.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(results, indent=1))
    md_path = out_dir / "results.md"
    md_path.write_text(results_markdown(results))
    return json_path, md_path


def results_markdown(results: dict[str, Any]) -> str:
    """The report: mean F1 per condition with the references, the claims, timings, then per-AU and per-fold tables
    for the headline conditions and per-AU tables (with per-fold means) for the others."""
    by_method = results["results"]
    methods = list(by_method)
    conditions = list(next(iter(by_method.values())))
    references = results.get("references", {})
    lines = [f"# Results: {results['dataset']} (preset {results.get('preset', '-')}, folds "
             f"{', '.join(map(str, results['folds']))})", ""]
    lines += ["Mean F1 (%) over AUs and folds, per occlusion condition." + (REFERENCES_NOTE if references else ""), ""]
    lines += _table(["method"] + conditions,
                    [[m] + [_pct(by_method[m][c]["f1_mean"]) for c in conditions] for m in methods],
                    best_columns=range(1, len(conditions) + 1),
                    extra_rows=[[_ref(r)] + [_pct(references[r]["f1_mean"])] * len(conditions) for r in references])
    claims = claims_markdown(results)
    if claims:
        lines += ["", "The paper's claims, checked (mean F1 %; a claim holds when the student's F1 is higher than the "
                  "baseline's and than *all AUs present*).", ""]
        lines += claims
    if results.get("timings"):
        lines += ["", "Inference time per face (median, ms).", ""]
        t = results["timings"]
        lines += _table(["method", "ms / face", "condition", "batch", "threads", "device"],
                        [[m, f"{t[m]['ms_per_face']:.2f}", t[m]["condition"], str(t[m]["batch_size"]),
                          str(t[m]["threads"]), t[m]["device"]] for m in methods if m in t])
    lines += unknown_occlusion_markdown(results)
    headline = [c for c in HEADLINE_CONDITIONS if c in conditions]
    for condition in headline:
        lines += ["", f"## {condition}: F1 (%) per AU, mean over folds", ""]
        lines += _per_au_table(results, condition)
        if len(results["folds"]) > 1:
            lines += ["", f"## {condition}: mean F1 (%) per fold", ""]
            lines += _per_fold_table(results, condition)
    others = [c for c in conditions if c not in headline]
    if others:
        lines += ["", "## Other conditions: F1 (%) per AU, mean over folds"
                  + ("; last column: mean F1 per fold" if len(results["folds"]) > 1 else "")]
        if references and headline:
            lines += ["", "The references are the same under every condition: see the tables above."]
    for condition in others:
        lines += ["", f"### {condition}", ""]
        lines += _per_au_table(results, condition, fold_column=len(results["folds"]) > 1, with_references=not headline)
    return "\n".join(lines) + "\n"


def unknown_occlusion_markdown(results: dict[str, Any]) -> list[str]:
    """The unknown-occlusion axis: F1 of every method that takes a mask, with the mask given (the protocol's) and
    estimated from the picture, then how well each estimate found the covered tokens. [] when it was not run."""
    axis = results.get("unknown_occlusion")
    if not axis:
        return []
    by_source = {"given": results["results"], **axis["results"]}
    methods = list(next(iter(axis["results"].values())))
    conditions = list(next(iter(results["results"].values())))
    rows = [[m, source] + [_pct(by_source[source][m][c]["f1_mean"]) for c in conditions]
            + [_pct(np.mean([by_source[source][m][c]["f1_mean"] for c in conditions]))]
            for m in methods for source in by_source]
    lines = ["", "## Without a mask: F1 (%) when nobody marks what is covered", "",
             "Every figure above tells the methods exactly which tokens are covered (*given*). A user's pictures come "
             "without that mask, so the methods that take one run again with the mask estimated from the occluded "
             "picture: *colour* (the colour heuristic), *learnt* (the occlusion estimator: "
             f"{axis['estimator']}) and *none* (every token seen, occluder included). The teachers read pixels only "
             "and are the same under every source (table above).", ""]
    lines += _table(["method", "mask"] + conditions + ["mean"], rows)
    lines += ["", "How well each estimate found the covered tokens (precision / recall over every test face; "
              "*clean*: share of tokens wrongly called covered).", ""]
    tokens = axis["tokens"]
    lines += _table(["estimate"] + conditions,
                    [[name] + [_tokens_cell(tokens[name][c], c) for c in conditions] for name in tokens])
    return lines


def _tokens_cell(scores: dict[str, float], condition: str) -> str:
    if condition == "clean":
        return f"{100 * scores['false_cover']:.1f} % wrong"
    return f"{scores['precision']:.2f} / {scores['recall']:.2f}".replace("nan", "-")


def _per_au_table(results: dict[str, Any], condition: str, fold_column: bool = False,
                  with_references: bool = True) -> list[str]:
    """AU columns and their mean, one row per method then the references; optionally the per-fold means."""
    cells = {m: by_condition[condition] for m, by_condition in results["results"].items()}
    references = results.get("references", {}) if with_references else {}
    aus = [au_name(a) for a in results["aus"]]

    def row(cell: dict) -> list[str]:
        per_fold = [" / ".join(_pct(v) for v in cell["f1_per_fold"].values())] if fold_column else []
        return [_pct(v) for v in cell["f1_per_au"]] + [_pct(cell["f1_mean"])] + per_fold

    return _table(["method"] + aus + ["Avg"] + (["per fold"] if fold_column else []),
                  [[m] + row(c) for m, c in cells.items()], best_columns=range(1, len(aus) + 2),
                  extra_rows=[[_ref(r)] + row(references[r]) for r in references])


def _per_fold_table(results: dict[str, Any], condition: str) -> list[str]:
    """Fold columns and their mean, one row per method then the references."""
    cells = {m: by_condition[condition] for m, by_condition in results["results"].items()}
    references = results.get("references", {})
    folds = [str(f) for f in results["folds"]]

    def row(cell: dict) -> list[str]:
        return [_pct(cell["f1_per_fold"][f]) for f in folds] + [_pct(cell["f1_mean"])]

    return _table(["method"] + [f"fold {f}" for f in folds] + ["mean"], [[m] + row(c) for m, c in cells.items()],
                  best_columns=range(1, len(folds) + 2),
                  extra_rows=[[_ref(r)] + row(references[r]) for r in references])


def _ref(name: str) -> str:
    return f"*{REFERENCE_LABELS[name]} (reference)*"


def _table(header: list[str], rows: list[list[str]], best_columns=(), extra_rows: list[list[str]] = ()) -> list[str]:
    """A Markdown table; the best value of each numeric column among ``rows`` is bold; ``extra_rows`` (references)
    follow, never bold."""
    best_columns = set(best_columns)
    for col in best_columns:
        values = [float(r[col]) for r in rows if _is_number(r[col])]
        if values:
            top = max(values)
            for r in rows:
                if _is_number(r[col]) and float(r[col]) == top:
                    r[col] = f"**{r[col]}**"
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in [*rows, *extra_rows]]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
