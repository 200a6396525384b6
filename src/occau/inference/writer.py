"""Result columns, and CSV files written row by row so that a crash loses nothing already done.

Columns follow py-feat (``FaceRect*``, ``FaceScore``, ``x_i``/``y_i``, ``AU01`` probabilities) and OpenFace (``AU01_c``
presence), plus what only occau reports: ``AU01_visible``, the fraction of each AU's region that was visible.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from occau.aus import au_name

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")  # image-left / image-right
FAILURE_COLUMNS = ("input", "frame", "reason")


def result_columns(aus: Sequence[int]) -> list[str]:
    names = [au_name(a) for a in aus]
    return [
        "input", "frame", "timestamp", "face_id",
        "FaceRectX", "FaceRectY", "FaceRectWidth", "FaceRectHeight", "FaceScore",
        *[f"x_{i}" for i in range(5)], *[f"y_{i}" for i in range(5)],
        *names, *[f"{n}_c" for n in names], *[f"{n}_visible" for n in names],
        "visible_fraction", "tokens_visible", "occlusion", "detector", "tracked",
    ]  # fmt: skip


def failures_path(out: str | Path) -> Path:
    """``results.csv`` -> ``results.failures.csv``."""
    out = Path(out)
    return out.with_name(out.stem + ".failures.csv")


class RowWriter:
    """Appends rows to a CSV, flushing each one; the header is written first, the file truncated on open."""

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.columns = list(columns)
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self._csv = csv.writer(self._file)
        self._csv.writerow(self.columns)
        self._file.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        self._csv.writerow([_cell(row.get(c)) for c in self.columns])
        self._file.flush()

    def close(self) -> None:
        self._file.close()


class LazyRowWriter:
    """A ``RowWriter`` whose file is created by the first row: no failures, no failures file."""

    def __init__(self, path: str | Path, columns: Sequence[str]) -> None:
        self.path, self.columns = Path(path), columns
        self._writer: RowWriter | None = None

    def write(self, row: Mapping[str, Any]) -> None:
        if self._writer is None:
            self._writer = RowWriter(self.path, self.columns)
        self._writer.write(row)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
