"""ME-GraphAU's list files (UPSTREAM §2.10): import them, or write them from labels read with occau's readers.

Files in ``data/<DS>/list/``: ``<DS>_{train,test}_img_path_fold<f>.txt`` (one image path per line),
``<DS>_{train,test}_label_fold<f>.txt`` (N space-separated ints per line), ``<DS>_train_AU_relation_fold<f>.txt``
(N*N ints) and ``<DS>_train_weight_fold<f>.txt`` (one tab-separated ``%f`` row; training reads the same numbers
from ``<DS>_weight_fold<f>.txt``, so both names are written).

**Fold numbers differ:** ME-GraphAU's fold f tests part (3, 2, 1)[f - 1] and trains on the other two parts in
ascending order; occau's fold k tests part k. Importing maps each ME-GraphAU test list onto the part it holds.

The format has no way to say "unknown", so on export a BP4D 9 is either dropped with its frame (``unknown="drop"``,
the default) or written as 0 (``unknown="negative"``); the upstream scripts write the 9 itself, which the weights
then count as a positive and the relation codes turn into values > 3. The number affected is reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from occau.aus import dataset_aus
from occau.data import disfa
from occau.data.folds import FOLDS, MEGRAPHAU_TEST_PART, dataset_parts, subject_part, train_parts
from occau.data.prepared import SequenceLabels
from occau.data.statistics import class_weights, pair_states

PREFIX = {"bp4d": "BP4D", "disfa": "DISFA"}
UNKNOWN_CODE = 9


@dataclass
class ExportReport:
    files: list[str] = field(default_factory=list)
    frames_per_part: dict[int, int] = field(default_factory=dict)
    dropped_frames: list[str] = field(default_factory=list)  # image paths dropped for unknown labels
    unknown_written_as_negative: int = 0


def image_path(seq: SequenceLabels, frame: int) -> str:
    """ME-GraphAU's image path of a frame: ``F001/T1/2440.jpg`` (BP4D, unpadded), ``SN001/0.png`` (DISFA)."""
    if seq.dataset == "bp4d":
        return f"{seq.subject}/{seq.sequence}/{frame}.jpg"
    return f"{seq.subject}/{frame}.png"


def parse_image_path(dataset: str, path: str) -> tuple[str, str, int]:
    """Inverse of ``image_path``: -> (subject, sequence, frame)."""
    parts = path.strip().split("/")
    try:
        if dataset == "bp4d" and len(parts) == 3:
            return parts[0], parts[1], int(Path(parts[2]).stem)
        if dataset == "disfa" and len(parts) == 2:
            return parts[0], disfa.SEQUENCE, int(Path(parts[1]).stem)
    except ValueError:
        pass
    expected = "F001/T1/2440.jpg" if dataset == "bp4d" else "SN001/0.png"
    raise ValueError(f"image path {path!r} is not like {expected!r}")


def _fmt_rows(rows: np.ndarray) -> str:
    return "".join(" ".join(str(int(v)) for v in row) + "\n" for row in rows)


def _write(out_dir: Path, name: str, text: str, report: ExportReport) -> None:
    path = out_dir / name
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    report.files.append(name)


def _part_table(
    sequences: list[SequenceLabels], part: int, unknown: str, report: ExportReport
) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Paths, exported labels, and the true labels/mask of one part, in ME-GraphAU's order."""
    paths: list[str] = []
    rows, labels, masks = [], [], []
    for seq in sequences:
        if subject_part(seq.dataset, seq.subject) != part:
            continue
        for i, frame in enumerate(seq.frames):
            path = image_path(seq, int(frame))
            if not seq.mask[i].all():
                if unknown == "drop":
                    report.dropped_frames.append(path)
                    continue
                report.unknown_written_as_negative += int((~seq.mask[i]).sum())
            paths.append(path)
            rows.append(seq.labels[i])
        labels.append(seq.labels)
        masks.append(seq.mask)
    n = sequences[0].labels.shape[1]
    out = np.array(rows, dtype=np.int64).reshape(-1, n)
    true_labels = np.concatenate(labels) if labels else np.zeros((0, n), np.uint8)
    true_mask = np.concatenate(masks) if masks else np.zeros((0, n), bool)
    return paths, out, true_labels, true_mask


def export_lists(sequences: list[SequenceLabels], out_dir: Path, unknown: str = "drop") -> ExportReport:
    """Write the complete ME-GraphAU list set for ``sequences`` (given in ME-GraphAU's subject/task order).

    Weights are computed on the training parts with unknown labels left out (whatever ``unknown`` says).
    """
    if unknown not in ("drop", "negative"):
        raise ValueError(f"unknown must be 'drop' or 'negative', got {unknown!r}")
    if not sequences:
        raise ValueError("no sequences to export")
    dataset = sequences[0].dataset
    prefix = PREFIX[dataset]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = ExportReport()
    tables = {p: _part_table(sequences, p, unknown, report) for p in (1, 2, 3)}
    report.frames_per_part = {p: len(t[0]) for p, t in tables.items()}
    for me_fold in FOLDS:
        test = tables[MEGRAPHAU_TEST_PART[me_fold]]
        train = [tables[p] for p in train_parts(MEGRAPHAU_TEST_PART[me_fold])]
        train_paths = [p for t in train for p in t[0]]
        train_labels = np.concatenate([t[1] for t in train])
        weights = class_weights(np.concatenate([t[2] for t in train]), np.concatenate([t[3] for t in train]))
        rel, _ = pair_states(train_labels, np.ones(train_labels.shape, dtype=bool))
        weight_row = "\t".join(f"{w:f}" for w in weights) + "\n"
        f = me_fold
        _write(out_dir, f"{prefix}_test_img_path_fold{f}.txt", "".join(p + "\n" for p in test[0]), report)
        _write(out_dir, f"{prefix}_test_label_fold{f}.txt", _fmt_rows(test[1]), report)
        _write(out_dir, f"{prefix}_train_img_path_fold{f}.txt", "".join(p + "\n" for p in train_paths), report)
        _write(out_dir, f"{prefix}_train_label_fold{f}.txt", _fmt_rows(train_labels), report)
        _write(out_dir, f"{prefix}_train_AU_relation_fold{f}.txt", _fmt_rows(rel), report)
        _write(out_dir, f"{prefix}_train_weight_fold{f}.txt", weight_row, report)
        _write(out_dir, f"{prefix}_weight_fold{f}.txt", weight_row, report)
    return report


def read_list_pair(path_file: Path, label_file: Path, n_aus: int) -> tuple[list[str], np.ndarray]:
    """An image-path list and its label list -> (paths, codes (T, N) int64), checked line by line."""
    for p in (path_file, label_file):
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: ME-GraphAU list file is missing")
    paths = [line.strip() for line in Path(path_file).read_text().splitlines() if line.strip()]
    rows = [line.split() for line in Path(label_file).read_text().splitlines() if line.strip()]
    if len(rows) != len(paths):
        raise ValueError(
            f"{label_file}: {len(rows)} label lines for {len(paths)} paths in {path_file} "
            "(ME-GraphAU's repository ships 5-line label samples: regenerate them from the raw labels)"
        )
    codes = np.empty((len(rows), n_aus), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) != n_aus:
            raise ValueError(f"{label_file}, line {i + 1}: {len(row)} values, expected {n_aus}")
        try:
            codes[i] = [int(float(v)) for v in row]
        except ValueError:
            raise ValueError(f"{label_file}, line {i + 1}: non-numeric value in {row}") from None
    bad = ~np.isin(codes, (0, 1, UNKNOWN_CODE))
    if bad.any():
        i = int(np.argwhere(bad)[0][0])
        raise ValueError(f"{label_file}, line {i + 1}: values must be 0, 1 or 9, got {rows[i]}")
    return paths, codes


def import_lists(list_dir: Path, dataset: str) -> list[SequenceLabels]:
    """Labels from an ME-GraphAU list folder (its three test lists cover every subject once).

    ME-GraphAU's test fold f must hold only subjects of occau's part (3, 2, 1)[f - 1]; a 9 becomes unknown.
    """
    list_dir = Path(list_dir)
    prefix, aus = PREFIX[dataset], dataset_aus(dataset)
    parts = dataset_parts(dataset)
    out: list[SequenceLabels] = []
    for part in (1, 2, 3):
        me_fold = next(f for f, p in MEGRAPHAU_TEST_PART.items() if p == part)
        path_file = list_dir / f"{prefix}_test_img_path_fold{me_fold}.txt"
        paths, codes = read_list_pair(path_file, list_dir / f"{prefix}_test_label_fold{me_fold}.txt", len(aus))
        keys = [parse_image_path(dataset, p) for p in paths]
        subjects = {k[0] for k in keys}
        if not subjects <= set(parts[part - 1]):
            raise ValueError(
                f"{path_file}: ME-GraphAU fold{me_fold} should test part {part} ({sorted(parts[part - 1])}), "
                f"found subjects {sorted(subjects - set(parts[part - 1]))} from other parts"
            )
        groups: dict[tuple[str, str], list[int]] = {}
        for i, (subject, sequence, _) in enumerate(keys):
            groups.setdefault((subject, sequence), []).append(i)
        for (subject, sequence), idx in groups.items():
            c = codes[idx]
            known = c != UNKNOWN_CODE
            out.append(
                SequenceLabels(
                    dataset=dataset,
                    subject=subject,
                    sequence=sequence,
                    frames=np.array([keys[i][2] for i in idx], dtype=np.int64),
                    labels=np.where(known, c, 0).astype(np.uint8),
                    mask=known,
                    intensity=np.full(c.shape, np.nan, dtype=np.float32),
                    source=str(path_file),
                )
            )
    return out
