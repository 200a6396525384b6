"""The SynthFACS datasheet: measured statistics and the pictures that show the benchmark is fit for purpose.

``write_datasheet(variant, preset, out)`` writes ``stats.json`` (base rates against SYNTHFACS.md's targets, the
label correlation matrix, intensity histograms, sizes, rendering speed) and PNGs: per-subject galleries of every AU
at intensities A..E, identity diversity, the same faces under every occlusion condition, the correlation heatmap,
base rates, intensity histograms and a sequence plot.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np

from occau.aus import AU_NAMES
from occau.data.synthfacs.dataset import SynthFACS, SynthFACSConfig, all_subjects, synthfacs_config
from occau.data.synthfacs.render import AU_INDEX, GENERATED_AUS, FrameNuisance, render_face

# Occurrence rates (%) SynthFACS aims at, from docs/reference/SYNTHFACS.md (BP4D: intensity >= 1; DISFA: >= 2)
TARGET_BASE_RATES: dict[str, dict[int, float]] = {
    "synth-bp4d": {1: 21, 2: 17, 4: 23, 6: 50, 7: 65, 10: 65, 12: 62, 14: 52, 15: 20, 17: 39, 23: 19, 24: 17},
    "synth-disfa": {1: 4, 2: 2, 4: 13, 6: 7, 9: 3, 12: 12, 25: 27, 26: 10},
}
STRONG_PAIRS: tuple[tuple[int, int], ...] = ((6, 12), (6, 7), (10, 12), (12, 14), (1, 2), (15, 17), (17, 24),
                                             (23, 24), (25, 26))
NEGATIVE_PAIRS: tuple[tuple[int, int], ...] = ((12, 15),)
TOLERANCE: dict[str, float] = {"synth-bp4d": 5.0, "synth-disfa": 3.0}  # points, per the acceptance criteria
TILE = 96  # display size of gallery tiles (crops smaller than this are enlarged, never redrawn)


def label_correlation(labels: np.ndarray) -> np.ndarray:
    """Pearson (phi) correlation of binary labels (N, A) -> (A, A); NaN where an AU never or always occurs."""
    x = labels.astype(np.float64) - labels.mean(axis=0)
    sd = np.sqrt((x**2).mean(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return (x.T @ x / len(x)) / np.outer(sd, sd)


def measure_speed(size: int = 112, n: int = 60, repeats: int = 5, variant: str = "synth-bp4d") -> float:
    """Faces per second of one process at side ``size``: the median over ``repeats`` blocks of ``n`` frames, in CPU
    time, so that other jobs on a shared machine count as little as possible."""
    ds = SynthFACS(synthfacs_config("smoke", image_size=size), variant, split="all")
    ds.image(0)  # warm-up
    rates = []
    for r in range(repeats):
        start = time.process_time()
        for i in range(r * n, (r + 1) * n):
            ds.image(i % len(ds))
        rates.append(n / (time.process_time() - start))
    return float(np.median(rates))


def dataset_stats(ds: SynthFACS, faces_per_second: float | None = None) -> dict:
    """Everything stats.json holds about one labelled split."""
    aus, labels, coded = ds.aus, ds.labels, ds.intensity.astype(int)
    rates = labels.mean(axis=0)
    corr = label_correlation(labels)
    target = TARGET_BASE_RATES.get(ds.variant, {})
    idx = {au: i for i, au in enumerate(aus)}

    def pair(a: int, b: int) -> float | None:
        return _finite(corr[idx[a], idx[b]]) if a in idx and b in idx else None

    cfg = ds.config
    return {
        "variant": ds.variant,
        "preset": cfg.name,
        "seed": cfg.seed,
        "image_size": cfg.image_size,
        "aus": [f"AU{au}" for au in aus],
        "base_rates": {f"AU{au}": round(float(r), 4) for au, r in zip(aus, rates)},
        "target_base_rates": {f"AU{au}": target[au] / 100 for au in aus if au in target},
        "max_base_rate_deviation_points": round(float(max(abs(100 * rates[i] - target[au])
                                                          for i, au in enumerate(aus) if au in target)), 2)
        if target else None,
        "correlation": [[_finite(v) for v in row] for row in corr],
        "strong_pairs": {f"{a}-{b}": pair(a, b) for a, b in STRONG_PAIRS if pair(a, b) is not None},
        "negative_pairs": {f"{a}-{b}": pair(a, b) for a, b in NEGATIVE_PAIRS if pair(a, b) is not None},
        "intensity_histogram": {f"AU{au}": np.bincount(coded[:, i], minlength=6).tolist() for i, au in enumerate(aus)},
        "positive_threshold": ds.threshold,
        "n_subjects": len(ds.subjects),
        "n_frames": len(ds),
        "n_pretrain_subjects": cfg.n_pretrain_subjects,
        "n_pretrain_frames": cfg.n_pretrain_subjects * cfg.sequences_per_subject * cfg.frames_per_sequence,
        "sequences_per_subject": cfg.sequences_per_subject,
        "frames_per_sequence": cfg.frames_per_sequence,
        "faces_per_second": None if faces_per_second is None else round(faces_per_second, 1),
        "faces_per_second_at": "112 px, one process, CPU time",
    }


def _finite(v: float) -> float | None:
    return round(float(v), 4) if np.isfinite(v) else None


# ---------------------------------------------------------------- pictures


def _tile(img: np.ndarray) -> np.ndarray:
    if img.shape[0] == TILE:
        return img
    return cv2.resize(img, (TILE, TILE), interpolation=cv2.INTER_CUBIC if img.shape[0] < TILE else cv2.INTER_AREA)


def _label(img: np.ndarray, text: str, at: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(img, text, at, cv2.FONT_HERSHEY_SIMPLEX, scale, (20, 20, 20), 1, cv2.LINE_AA)


def _mosaic(tiles: list[list[np.ndarray]], row_names: list[str], col_names: list[str], left: int = 150) -> np.ndarray:
    """Tiles (rows x cols of (TILE, TILE, 3)) on a white sheet with row and column captions."""
    top, gap = 22, 2
    rows, cols = len(tiles), len(tiles[0])
    sheet = np.full((top + rows * (TILE + gap), left + cols * (TILE + gap), 3), 255, np.uint8)
    for c, name in enumerate(col_names):
        _label(sheet, name, (left + c * (TILE + gap) + 4, 16))
    for r, row in enumerate(tiles):
        y = top + r * (TILE + gap)
        _label(sheet, row_names[r], (4, y + TILE // 2 + 5), 0.4)
        for c, tile in enumerate(row):
            x = left + c * (TILE + gap)
            sheet[y: y + TILE, x: x + TILE] = _tile(tile)
    return sheet


def _save(path: Path, rgb: np.ndarray) -> None:
    cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))


def _difference_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16)).max(axis=-1).astype(np.float32)
    d = np.clip(d * (255.0 / max(24.0, float(d.max()))), 0, 255).astype(np.uint8)
    return cv2.cvtColor(cv2.applyColorMap(d, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)


def gallery(ds: SynthFACS, subject_pos: int) -> np.ndarray:
    """One subject: a row per AU, columns neutral, A..E and where E differs from neutral."""
    subject = ds.subjects[subject_pos]
    idn = ds._gen.identity(subject)
    S = ds.config.image_size
    still = FrameNuisance(noise_sd=0.0)
    neutral = render_face(idn, np.zeros(len(GENERATED_AUS)), S, still)
    rows = []
    for au in GENERATED_AUS:
        row = [neutral]
        for level in range(1, 6):
            x = np.zeros(len(GENERATED_AUS))
            x[AU_INDEX[au]] = level
            row.append(render_face(idn, x, S, still))
        row.append(_difference_map(neutral, row[-1]))
        rows.append(row)
    names = [f"AU{au} {AU_NAMES[au][:15]}" for au in GENERATED_AUS]
    return _mosaic(rows, names, ["neutral", "A", "B", "C", "D", "E", "|E-neutral|"])


def subjects_sheet(ds: SynthFACS, n: int = 24) -> np.ndarray:
    """Neutral faces of many subjects: identity nuisance at a glance."""
    gen, S = ds._gen, ds.config.image_size
    subjects = all_subjects(ds.config, ds.variant)[:n]
    faces = [render_face(gen.identity(s), np.zeros(len(GENERATED_AUS)), S, FrameNuisance(noise_sd=0)) for s in subjects]
    cols = 8
    rows = [faces[i: i + cols] for i in range(0, len(faces), cols)]
    rows[-1] += [np.full_like(faces[0], 255)] * (cols - len(rows[-1]))
    return _mosaic(rows, [s.id for s in subjects[::cols]], [""] * cols, left=50)


def _expressive_frames(ds: SynthFACS, n: int) -> list[int]:
    """Indices of the most expressive frame of each of the first ``n`` subjects."""
    per = ds.config.sequences_per_subject * ds.config.frames_per_sequence
    total = ds.intensity.sum(axis=1)
    return [s * per + int(np.argmax(total[s * per: (s + 1) * per])) for s in range(min(n, len(ds.subjects)))]


def occlusion_sheet(ds: SynthFACS, n_faces: int = 4) -> np.ndarray:
    """The same faces under every occlusion condition of PROTOCOL §2."""
    from occau.occlusion import CONDITIONS, occlude

    rows, names = [], []
    for i in _expressive_frames(ds, n_faces):
        sample = ds[i]
        key = f"{sample['sequence']}/{sample['frame']}"
        rows.append([occlude(sample["image"], c, sample_key=key, seed=0).image for c in CONDITIONS])
        names.append(key)
    return _mosaic(rows, names, [c[:9] for c in CONDITIONS], left=110)


def _plots(ds: SynthFACS, stats: dict, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    aus, names = ds.aus, stats["aus"]
    corr = np.array([[np.nan if v is None else v for v in row] for row in stats["correlation"]])
    fig, ax = plt.subplots(figsize=(0.6 * len(aus) + 2, 0.6 * len(aus) + 1))
    im = ax.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1)
    for i in range(len(aus)):
        for j in range(len(aus)):
            if np.isfinite(corr[i, j]):
                ax.text(j, i, f"{corr[i, j]:.2f}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(aus)), names, rotation=90)
    ax.set_yticks(range(len(aus)), names)
    ax.set_title(f"{ds.variant} {ds.config.name}: label correlation (phi)")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.tight_layout()
    fig.savefig(out / "correlation.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(0.55 * len(aus) + 2, 3.2))
    x = np.arange(len(aus))
    ax.bar(x - 0.2, [100 * stats["base_rates"][n] for n in names], 0.4, label="realised")
    target = stats["target_base_rates"]
    ax.bar(x + 0.2, [100 * target.get(n, np.nan) for n in names], 0.4, label="target (SYNTHFACS.md)")
    ax.set_xticks(x, names, rotation=45)
    ax.set_ylabel("% of frames positive")
    ax.set_title(f"{ds.variant} {ds.config.name}: base rates")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "base_rates.png", dpi=110)
    plt.close(fig)

    cols = 4
    rows = (len(aus) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 2.2 * rows), squeeze=False)
    for k, (name, ax) in enumerate(zip(names, axes.flat)):
        counts = np.array(stats["intensity_histogram"][name])
        colours = ["tab:gray" if v < stats["positive_threshold"] else "tab:red" for v in range(6)]
        ax.bar(range(6), np.maximum(counts, 0.5), color=colours)
        ax.set_yscale("log")
        ax.set_xticks(range(6), ["0", "A", "B", "C", "D", "E"])
        ax.set_title(f"{name} ({100 * stats['base_rates'][name]:.0f}% positive)", fontsize=9)
    for ax in axes.flat[len(aus):]:
        ax.axis("off")
    fig.suptitle(f"{ds.variant} {ds.config.name}: coded intensity (red = positive label)")
    fig.tight_layout()
    fig.savefig(out / "intensity_hist.png", dpi=110)
    plt.close(fig)


def sequence_plot(ds: SynthFACS, out: Path) -> None:
    """The liveliest sequence of the first subjects: a filmstrip above the AU intensity curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    T = ds.config.frames_per_sequence
    n_seq = min(len(ds), 6 * ds.config.sequences_per_subject * T) // T
    spread = [ds.intensity[q * T: (q + 1) * T].std(axis=0).sum() for q in range(n_seq)]
    q = int(np.argmax(spread))
    frames = np.linspace(0, T - 1, 8).round().astype(int)
    strip = np.concatenate([_tile(ds.image(q * T + t)) for t in frames], axis=1)
    fig, (top, mid, bottom) = plt.subplots(3, 1, figsize=(11, 8.5), gridspec_kw={"height_ratios": [1.1, 2, 1.2]})
    top.imshow(strip)
    top.set_xticks([(k + 0.5) * TILE for k in range(len(frames))], [f"frame {t}" for t in frames])
    top.set_yticks([])
    top.set_title(f"{ds.variant} {ds.config.name}: sequence {ds[q * T]['sequence']}")
    drawn = ds.continuous_intensity()[q * T: (q + 1) * T][:, [AU_INDEX[au] for au in ds.aus]]
    colours = plt.cm.tab20(np.linspace(0, 1, len(ds.aus)))
    for i, au in enumerate(ds.aus):
        if drawn[:, i].max() > 0.2:
            mid.plot(range(T), drawn[:, i], color=colours[i], lw=1.6, label=f"AU{au}")
    threshold = ds.threshold - 0.5
    mid.axhline(threshold, color="k", lw=0.8, ls="--", label="label threshold")
    for t in frames:
        mid.axvline(t, color="0.85", lw=0.8, zorder=0)
    mid.set_ylabel("drawn intensity")
    mid.set_ylim(-0.1, 5.2)
    mid.set_xlim(-0.5, T - 0.5)
    mid.legend(ncol=7, fontsize=8, loc="upper left")
    coded = ds.intensity[q * T: (q + 1) * T].T  # (A, T)
    bottom.imshow(coded, aspect="auto", cmap="Reds", vmin=0, vmax=5, interpolation="nearest")
    positive = ds.labels[q * T: (q + 1) * T].T
    ys, xs = np.nonzero(positive)
    bottom.scatter(xs, ys, s=4, c="k", marker="s", label="positive label")
    bottom.set_yticks(range(len(ds.aus)), [f"AU{au}" for au in ds.aus], fontsize=7)
    bottom.set_xlabel("frame")
    bottom.set_title("coded intensity (shade) and positive labels (dots)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "sequence.png", dpi=100)
    plt.close(fig)


def write_datasheet(variant: str, preset: str | SynthFACSConfig, out: str | Path, n_gallery: int = 3,
                    measure: bool = True, log=print) -> dict:
    """Write stats.json and the datasheet pictures for all labelled subjects of ``variant`` at ``preset``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = SynthFACS(synthfacs_config(preset), variant, split="all")
    speed = measure_speed(variant=variant) if measure else None
    stats = dataset_stats(ds, speed)
    (out / "stats.json").write_text(json.dumps(stats, indent=1))
    log(f"{variant} {ds.config.name}: {stats['n_frames']} frames of {stats['n_subjects']} subjects, "
        f"max base-rate deviation {stats['max_base_rate_deviation_points']} points, "
        + (f"{speed:.0f} faces/s at 112 px" if speed else "speed not measured"))
    for k in range(min(n_gallery, len(ds.subjects))):
        _save(out / f"gallery_{ds.subjects[k].id}.png", gallery(ds, k))
    _save(out / "subjects.png", subjects_sheet(ds))
    _plots(ds, stats, out)
    sequence_plot(ds, out)
    try:
        _save(out / "occlusion.png", occlusion_sheet(ds))
    except ImportError as err:  # occau.occlusion is written in parallel; the rest of the datasheet stands alone
        log(f"occlusion gallery skipped: {err}")
    return stats
