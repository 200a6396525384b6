"""DISFA as its provider ships it: per-AU intensity files and the left-camera videos.

Labels: ``ActionUnit_Labels/SNxxx/SNxxx_au<k>.txt``, no header, one ``frame,intensity`` line per video frame with a
1-based frame index and an intensity 0..5. An AU is positive when its intensity is >= 2 (PROTOCOL §4).

Frames: ``Videos_LeftCamera/LeftVideoSNxxx_comp.avi``. Like ME-GraphAU's list script, which ignores the index
column and names line ``t`` (0-based) image ``SNxxx/t.png``, occau matches decoded video frame ``t`` (0-based) with
label line ``t``, i.e. label frame index ``t + 1``; occau also checks that the index column really reads ``t + 1``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from occau.aus import DISFA_AUS
from occau.data.folds import all_subjects
from occau.data.prepared import SequenceLabels

LABEL_DIR = Path("ActionUnit_Labels")
VIDEO_DIR = Path("Videos_LeftCamera")
SEQUENCE = "left"  # one left-camera video per subject
POSITIVE_INTENSITY = 2


def label_dir(root: Path) -> Path:
    """``<root>/ActionUnit_Labels``, or ``root`` itself if it already is that folder."""
    root = Path(root)
    for candidate in (root / LABEL_DIR, root):
        if candidate.is_dir() and any(candidate.glob("SN*")):
            return candidate
    raise FileNotFoundError(f"no DISFA label folders in {root / LABEL_DIR} (expected SNxxx/SNxxx_auK.txt)")


def video_path(root: Path, subject: str) -> Path:
    """The left-camera video of a subject: ``<root>/Videos_LeftCamera/LeftVideo<SNxxx>_comp.avi``."""
    return Path(root) / VIDEO_DIR / f"LeftVideo{subject}_comp.avi"


def read_intensity_file(path: Path) -> np.ndarray:
    """One ``SNxxx_auK.txt`` -> intensities (T,) int64, line t holding frame t + 1."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: DISFA AU intensity file is missing")
    lines = path.read_text().splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = np.empty(len(lines), dtype=np.int64)
    for t, line in enumerate(lines):
        fields = line.strip().split(",")
        try:
            frame, value = (int(x) for x in fields)
        except ValueError:
            raise ValueError(f"{path}, line {t + 1}: expected 'frame,intensity' integers, got {line!r}") from None
        if frame != t + 1:
            raise ValueError(f"{path}, line {t + 1}: frame index {frame}, expected {t + 1} (1-based, no gaps)")
        if not 0 <= value <= 5:
            raise ValueError(f"{path}, line {t + 1}: intensity {value} outside 0..5")
        out[t] = value
    return out


def read_subject(folder: Path, subject: str, aus: tuple[int, ...] = DISFA_AUS) -> SequenceLabels:
    """All AU files of one subject. Every AU file must exist and have the same number of lines."""
    folder = Path(folder)
    columns = [read_intensity_file(folder / f"{subject}_au{au}.txt") for au in aus]
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        counts = ", ".join(f"{subject}_au{au}.txt: {len(c)}" for au, c in zip(aus, columns))
        raise ValueError(f"{folder}: AU files disagree on the number of frames ({counts})")
    intensity = np.stack(columns, axis=1)  # (T, N)
    return SequenceLabels(
        dataset="disfa",
        subject=subject,
        sequence=SEQUENCE,
        frames=np.arange(intensity.shape[0], dtype=np.int64),  # 0-based video frame = label line
        labels=(intensity >= POSITIVE_INTENSITY).astype(np.uint8),
        mask=np.ones(intensity.shape, dtype=bool),
        intensity=intensity.astype(np.float32),
        source=str(folder),
    )


def read_labels(root: Path, subjects: tuple[str, ...] | None = None) -> list[SequenceLabels]:
    """Every subject (default: all 27) in ME-GraphAU's part/subject order."""
    folder = label_dir(root)
    subjects = all_subjects("disfa") if subjects is None else subjects
    order = {s: i for i, s in enumerate(all_subjects("disfa"))}
    unknown = [s for s in subjects if s not in order]
    if unknown:
        raise ValueError(f"not DISFA subjects: {unknown}")
    return [read_subject(folder / s, s) for s in sorted(subjects, key=order.__getitem__)]
