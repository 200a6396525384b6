"""Result files of an evaluation (PROTOCOL §5): ``results.json`` for machines, ``results.md`` for people.

Numbers are F1 in [0, 1] in JSON and percent with one decimal in Markdown, as ME-GraphAU's tables print them.
"""

from __future__ import annotations

import json
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from occau import __version__
from occau.aus import au_name
from occau.reports.claims import claims_markdown

BLOCK_CONDITIONS = ("upper", "lower", "left", "right", "center", "eyes", "mouth", "mask", "sunglasses", "hand")
PATCH_CONDITIONS = ("clean", "patch25", "patch50", "patch75")


def software_info() -> dict[str, Any]:
    return {"occau": __version__, "git_commit": _git_commit(), "torch": torch.__version__,
            "python": platform.python_version()}


def machine_info() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": _cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def write_results(out_dir: str | Path, results: dict[str, Any]) -> tuple[Path, Path]:
    """Write ``results.json`` and ``results.md``; ``results`` follows the layout documented in docs/results.md."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "results.json"
    json_path.write_text(json.dumps(results, indent=1))
    md_path = out_dir / "results.md"
    md_path.write_text(results_markdown(results))
    return json_path, md_path


def results_markdown(results: dict[str, Any]) -> str:
    aus = [au_name(a) for a in results["aus"]]
    by_method = results["results"]
    methods = list(by_method)
    conditions = list(next(iter(by_method.values())))
    lines = [f"# Results: {results['dataset']} (preset {results.get('preset', '-')}, folds "
             f"{', '.join(map(str, results['folds']))})", ""]
    lines += ["Mean F1 (%) over AUs and folds, per occlusion condition.", ""]
    lines += _table(["method"] + conditions,
                    [[m] + [_pct(by_method[m][c]["f1_mean"]) for c in conditions] for m in methods],
                    best_columns=range(1, len(conditions) + 1))
    claims = claims_markdown(results)
    if claims:
        lines += ["", "The paper's claims, checked (mean F1 %; a claim holds when the student's F1 is higher).", ""]
        lines += claims
    if results.get("timings"):
        lines += ["", "Inference time per face (median, ms).", ""]
        t = results["timings"]
        lines += _table(["method", "ms / face", "condition", "batch", "threads", "device"],
                        [[m, f"{t[m]['ms_per_face']:.2f}", t[m]["condition"], str(t[m]["batch_size"]),
                          str(t[m]["threads"]), t[m]["device"]] for m in methods if m in t])
    for condition in conditions:
        lines += ["", f"## {condition}: F1 (%) per AU", ""]
        rows = [[m] + [_pct(v) for v in by_method[m][condition]["f1_per_au"]] + [_pct(by_method[m][condition]["f1_mean"])]
                for m in methods]
        lines += _table(["method"] + aus + ["Avg"], rows, best_columns=range(1, len(aus) + 2))
        if len(results["folds"]) > 1:
            lines += ["", "Per fold (mean F1 %): " + "; ".join(
                f"{m} " + "/".join(_pct(v) for v in by_method[m][condition]["f1_per_fold"].values()) for m in methods)]
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]], best_columns=()) -> list[str]:
    """A Markdown table; the best value of each numeric column is bold."""
    best_columns = set(best_columns)
    for col in best_columns:
        values = [float(r[col]) for r in rows if _is_number(r[col])]
        if values:
            top = max(values)
            for r in rows:
                if _is_number(r[col]) and float(r[col]) == top:
                    r[col] = f"**{r[col]}**"
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def _pct(value: float) -> str:
    return f"{100 * value:.1f}"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _cpu_count() -> int | None:
    import os

    return os.cpu_count()
