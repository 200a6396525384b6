"""Plots of an evaluation: where people would rather look than read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from occau.aus import au_name  # noqa: E402
from occau.evaluation.references import REFERENCE_LABELS  # noqa: E402
from occau.evaluation.methods import STUDENT  # noqa: E402
from occau.occlusion import CONDITION_GROUPS, PATCH_RATIOS  # noqa: E402

HEATMAP_GROUPS = ("square", "block", "occluder")  # every condition that is not on the patch curve
REFERENCE_STYLE = {"all_present": dict(color="black", linestyle=(0, (6, 3))),
                   "wa_constant": dict(color="tab:gray", linestyle=(0, (2, 2)))}


def plot_patch_curve(results: dict[str, Any], out_png: str | Path) -> Path | None:
    """Mean F1 against the fraction of randomly occluded patches, one line per method, the references dashed."""
    by_method = results["results"]
    conditions = [c for c in CONDITION_GROUPS["patch"] if c in next(iter(by_method.values()))]
    if len(conditions) < 2:
        return None
    fig, ax = plt.subplots(figsize=(7.6, 4.2))
    x = [PATCH_RATIOS[c] for c in conditions]
    for method, by_condition in by_method.items():
        y = [100 * by_condition[c]["f1_mean"] for c in conditions]
        marker = "o" if method.startswith(STUDENT) else "s"
        ax.plot(x, y, marker=marker, label=method, linewidth=2.2 if method == STUDENT else 1.2)
    _reference_lines(ax, results)
    ax.set_xlabel("randomly occluded patches (%)")
    ax.set_ylabel("mean F1 (%)")
    ax.set_xticks(x)
    ax.grid(alpha=0.3)
    ax.set_title(f"{results['dataset']}: F1 under random patch occlusion")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: the lines span the whole width
    return _save(fig, out_png)


def _reference_lines(ax, results: dict[str, Any]) -> None:
    """The references' mean F1 as dashed horizontal lines, in the legend (they are the same under every condition)."""
    for name, cell in results.get("references", {}).items():
        value = 100 * cell["f1_mean"]
        ax.axhline(value, linewidth=1.3, label=f"{REFERENCE_LABELS[name]} ({value:.1f}, reference)",
                   **REFERENCE_STYLE.get(name, dict(color="black", linestyle="--")))


def heatmap_conditions(evaluated) -> list[str]:
    """The evaluated conditions shown as per-AU heatmaps: clean (the reference row), then every group off the patch
    curve in registry order, so a condition added to ``CONDITION_GROUPS`` appears without touching this file."""
    ordered = ("clean", *(c for group in HEATMAP_GROUPS for c in CONDITION_GROUPS[group]))
    return [c for c in ordered if c in evaluated]


def plot_block_heatmaps(results: dict[str, Any], out_png: str | Path) -> Path | None:
    """Per-AU F1 under each condition off the patch curve (squares, blocks, occluders), one panel per method, on a
    shared colour scale."""
    by_method = results["results"]
    conditions = heatmap_conditions(next(iter(by_method.values())))
    if not conditions:
        return None
    aus = [au_name(a) for a in results["aus"]]
    panels = {m: (conditions, [by_method[m][c]["f1_per_au"] for c in conditions]) for m in by_method}
    references = results.get("references", {})
    if references:  # one more panel: the references' per-AU F1, the same under every condition
        panels["references (any condition)"] = ([REFERENCE_LABELS[r] for r in references],
                                                [references[r]["f1_per_au"] for r in references])
    cols = min(3, len(panels))
    rows = int(np.ceil(len(panels) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 0.32 * len(conditions) * rows + 1.2 * rows),
                             squeeze=False, layout="constrained")  # keeps the title on the panels, labels apart
    image = None
    for ax, (title, (row_names, values)) in zip(axes.flat, panels.items()):
        grid = np.array(values) * 100  # (rows, AUs)
        image = ax.imshow(grid, vmin=0, vmax=100, cmap="viridis", aspect="auto")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(len(aus)), [a[2:] for a in aus], fontsize=7)
        ax.set_yticks(range(len(row_names)), row_names, fontsize=7)
        for (i, j), value in np.ndenumerate(grid):
            ax.text(j, i, f"{value:.0f}", ha="center", va="center", fontsize=5.5,
                    color="white" if value < 55 else "black")
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.colorbar(image, ax=axes, shrink=0.8, label="F1 (%)")
    fig.suptitle(f"{results['dataset']}: per-AU F1 (%) under squares, face regions and occluders (columns: AU number)", fontsize=10)
    return _save(fig, out_png)


def plot_timings(results: dict[str, Any], out_png: str | Path) -> Path | None:
    """Inference time per face of each method, one bar each."""
    timings = results.get("timings") or {}
    if not timings:
        return None
    methods = list(timings)
    values = [timings[m]["ms_per_face"] for m in methods]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * len(methods) + 1.2))
    ax.barh(methods, values, color="tab:blue")
    for i, value in enumerate(values):
        ax.text(value, i, f" {value:.2f}", va="center", fontsize=8)
    first = timings[methods[0]]
    ax.set_xlabel(f"ms per face ({first['device']}, {first['threads']} threads, batch {first['batch_size']}, "
                  f"{first['input_size']} px, {first['condition']})")
    ax.invert_yaxis()
    ax.set_title("inference time per face")
    return _save(fig, out_png)


def plot_probe_curve(curve: dict[str, Any], out_png: str | Path, title: str = "MAE pretraining") -> Path:
    """The AU probe over pretraining epochs (``probe.json``), with the random-init encoder's scores as dashed lines:
    the picture that says whether pretraining made the latents worth mining."""
    colors = {"clean": "tab:blue", "patch50": "tab:orange"}
    labels = {"clean": "clean", "patch50": "50 % random patches"}
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    epochs = [e["epoch"] for e in curve["epochs"]]
    for condition, color in colors.items():
        ax.plot(epochs, [e[condition] for e in curve["epochs"]], marker="o", color=color,
                label=f"pretrained MAE, {labels[condition]}")
        if curve.get("random_init"):
            ax.axhline(curve["random_init"][condition], color=color, linestyle=(0, (5, 3)), linewidth=1.2,
                       label=f"random-init encoder, {labels[condition]}")
    ax.set_xlabel("pretraining epoch")
    ax.set_ylabel("AU probe: mean F1 (%)")
    ax.set_xticks(epochs)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, frameon=False)
    return _save(fig, out_png)


MASK_SOURCE_STYLE = {"given": "tab:green", "learnt": "tab:blue", "colour": "tab:orange", "none": "tab:gray"}


def plot_unknown_occlusion(results: dict[str, Any], out_png: str | Path) -> Path | None:
    """Mean F1 per condition of each method that takes a mask, one bar per mask source (given, estimated, none),
    the references dashed: what a user without masks keeps."""
    axis = results.get("unknown_occlusion")
    if not axis:
        return None
    by_source = {"given": results["results"], **axis["results"]}
    methods = list(next(iter(axis["results"].values())))
    conditions = list(next(iter(results["results"].values())))
    fig, axes = plt.subplots(len(methods), 1, figsize=(max(8.0, 0.62 * len(conditions) + 2), 2.6 * len(methods)),
                             squeeze=False, sharex=True, layout="constrained")
    width = 0.8 / len(by_source)
    x = np.arange(len(conditions))
    for ax, method in zip(axes[:, 0], methods):
        for i, (source, by_method) in enumerate(by_source.items()):
            values = [100 * by_method[method][c]["f1_mean"] for c in conditions]
            ax.bar(x + (i - (len(by_source) - 1) / 2) * width, values, width, label=f"mask: {source}",
                   color=MASK_SOURCE_STYLE.get(source, None))
        _reference_lines(ax, results)
        ax.set_title(method, fontsize=9)
        ax.set_ylabel("mean F1 (%)")
        ax.grid(axis="y", alpha=0.3)
    axes[-1, 0].set_xticks(x, conditions, rotation=45, ha="right", fontsize=8)
    axes[0, 0].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle(f"{results['dataset']}: F1 with the occlusion mask given, estimated, or not given", fontsize=10)
    return _save(fig, out_png)


def plot_all(results: dict[str, Any], out_dir: str | Path) -> list[Path]:
    out_dir = Path(out_dir)
    made = [plot_patch_curve(results, out_dir / "f1_vs_patch_ratio.png"),
            plot_block_heatmaps(results, out_dir / "per_au_block_heatmaps.png"),
            plot_timings(results, out_dir / "inference_time.png"),
            plot_unknown_occlusion(results, out_dir / "f1_without_mask.png")]
    return [p for p in made if p is not None]


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130, bbox_inches="tight")
    plt.close(fig)
    return path
