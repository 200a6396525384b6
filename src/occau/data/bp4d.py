"""BP4D-Spontaneous as its provider ships it: AU occurrence CSVs and per-task image sequences.

Labels: ``AUCoding/AU_OCC/<Subject>_<Task>.csv``, a header ``0,1,...,99`` (column ``0`` is the frame number, the
others are named by the bare AU number), then one row per coded frame with 0 (absent), 1 (present) or 9 (not coded).
A 9 is kept as *unknown* for that AU only (``mask`` False), never passed on as a positive the way ME-GraphAU's
scripts do (UPSTREAM pitfall 4).

Images: ``<images>/<Subject>/<Task>/<frame>.jpg``; the frame number may be zero-padded (``0721.jpg``) or not
(``occau.data.prepare`` reads them).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from occau.aus import BP4D_AUS
from occau.data.folds import BP4D_TASKS, all_subjects
from occau.data.prepared import SequenceLabels

LABEL_DIR = Path("AUCoding") / "AU_OCC"
UNKNOWN_CODE = 9


def label_dir(root: Path) -> Path:
    """``<root>/AUCoding/AU_OCC``, or ``root`` itself if it already is that folder."""
    root = Path(root)
    for candidate in (root / LABEL_DIR, root):
        if candidate.is_dir() and any(candidate.glob("*_T*.csv")):
            return candidate
    raise FileNotFoundError(f"no BP4D AU occurrence CSVs in {root / LABEL_DIR} (expected <Subject>_<Task>.csv files)")


def read_occurrence_csv(path: Path, subject: str, task: str, aus: tuple[int, ...] = BP4D_AUS) -> SequenceLabels:
    """One ``<Subject>_<Task>.csv`` -> labels of its frames in file order, unknown (9) masked out."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: BP4D AU occurrence file is missing")
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise ValueError(f"{path}: empty file, expected a header row '0,1,2,...'")
    header = [h.strip() for h in rows[0]]
    wanted = ["0"] + [str(au) for au in aus]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise ValueError(f"{path}: header has no column(s) {missing}; expected the frame column '0' and AU columns")
    cols = [header.index(c) for c in wanted]
    codes = np.empty((len(rows) - 1, len(wanted)), dtype=np.int64)  # (T, 1 + N): frame, AU codes
    for i, row in enumerate(rows[1:]):
        line = i + 2
        if len(row) != len(header):
            raise ValueError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        try:
            codes[i] = [int(row[c]) for c in cols]
        except ValueError:
            raise ValueError(f"{path}, line {line}: non-integer value in columns {wanted}: {row[:14]}...") from None
    frames, au_codes = codes[:, 0], codes[:, 1:]  # (T,), (T, N)
    bad = ~np.isin(au_codes, (0, 1, UNKNOWN_CODE))
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(f"{path}, line {i + 2}: AU{aus[j]} has code {au_codes[i, j]}, expected 0, 1 or 9")
    if len(np.unique(frames)) != len(frames):
        raise ValueError(f"{path}: repeated frame numbers in column '0'")
    known = au_codes != UNKNOWN_CODE
    return SequenceLabels(
        dataset="bp4d",
        subject=subject,
        sequence=task,
        frames=frames,
        labels=np.where(known, au_codes, 0).astype(np.uint8),
        mask=known,
        intensity=np.full(au_codes.shape, np.nan, dtype=np.float32),  # AU_OCC carries occurrence only
        source=str(path),
    )


def read_labels(root: Path, subjects: tuple[str, ...] | None = None) -> list[SequenceLabels]:
    """Every task of every subject (default: all 41), in ME-GraphAU's part/subject/task order.

    Every expected CSV must exist: a missing task would silently shrink a fold.
    """
    folder = label_dir(root)
    subjects = all_subjects("bp4d") if subjects is None else subjects
    order = {s: i for i, s in enumerate(all_subjects("bp4d"))}
    unknown = [s for s in subjects if s not in order]
    if unknown:
        raise ValueError(f"not BP4D subjects: {unknown}")
    return [
        read_occurrence_csv(folder / f"{s}_{t}.csv", s, t)
        for s in sorted(subjects, key=order.__getitem__)
        for t in BP4D_TASKS
    ]
