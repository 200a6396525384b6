"""Action units: the label sets of each dataset and where on the face each AU acts.

Regions are boxes ``(x0, y0, x1, y1)`` in normalised coordinates of an aligned face crop (see
``occau.faces.template``): x to the right, y down, both in [0, 1]. They say where FACS puts an AU's visible
evidence, so that synthetic faces draw each AU there, occlusion protocols can be checked against them and
``occau detect`` can report how much of an AU's region was visible.
"""

from __future__ import annotations

BP4D_AUS: tuple[int, ...] = (1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24)
DISFA_AUS: tuple[int, ...] = (1, 2, 4, 6, 9, 12, 25, 26)

AU_NAMES: dict[int, str] = {
    1: "inner brow raiser",
    2: "outer brow raiser",
    4: "brow lowerer",
    5: "upper lid raiser",
    6: "cheek raiser",
    7: "lid tightener",
    9: "nose wrinkler",
    10: "upper lip raiser",
    12: "lip corner puller",
    14: "dimpler",
    15: "lip corner depressor",
    17: "chin raiser",
    20: "lip stretcher",
    23: "lip tightener",
    24: "lip pressor",
    25: "lips part",
    26: "jaw drop",
}

# (x0, y0, x1, y1) in the aligned crop; the template puts the eyes at y~0.47 and the mouth at y~0.76.
AU_REGIONS: dict[int, tuple[float, float, float, float]] = {
    1: (0.30, 0.18, 0.70, 0.48),
    2: (0.18, 0.18, 0.82, 0.48),
    4: (0.22, 0.22, 0.78, 0.52),
    5: (0.26, 0.38, 0.74, 0.54),
    6: (0.16, 0.40, 0.84, 0.70),
    7: (0.26, 0.38, 0.74, 0.56),
    9: (0.36, 0.38, 0.64, 0.70),
    10: (0.30, 0.56, 0.70, 0.84),
    12: (0.22, 0.58, 0.78, 0.88),
    14: (0.24, 0.64, 0.76, 0.86),
    15: (0.26, 0.66, 0.74, 0.90),
    17: (0.30, 0.70, 0.70, 0.98),
    20: (0.20, 0.64, 0.80, 0.88),
    23: (0.30, 0.66, 0.70, 0.88),
    24: (0.30, 0.66, 0.70, 0.88),
    25: (0.30, 0.64, 0.70, 0.88),
    26: (0.18, 0.62, 0.82, 1.00),
}

DATASET_AUS: dict[str, tuple[int, ...]] = {
    "bp4d": BP4D_AUS,
    "disfa": DISFA_AUS,
    "synth-bp4d": BP4D_AUS,
    "synth-disfa": DISFA_AUS,
}


def au_name(au: int) -> str:
    """Column name used in tables and CSVs, e.g. ``AU01``."""
    return f"AU{au:02d}"


def dataset_aus(dataset: str) -> tuple[int, ...]:
    """The AU list, in output order, of a dataset or SynthFACS variant."""
    try:
        return DATASET_AUS[dataset]
    except KeyError:
        raise ValueError(f"unknown dataset {dataset!r}; known: {sorted(DATASET_AUS)}") from None
