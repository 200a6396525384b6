"""A prepared real dataset on disk (the output of ``occau prepare``) and the torch Dataset that serves it.

Layout of a prepared folder::

    prepare.json        how it was made: dataset, AU list, crop size, template, detectors, policies
    manifest.jsonl      one JSON record per frame (see ``FrameRecord``), sorted by subject, sequence, frame
    failures.tsv        frames where no face was found, and what was done with them
    summary.json        frame/detector/label counts, unknown labels per AU
    crops/<subject>/<sequence>/<frame>.<jpg|png>

Records keep everything needed to check or redo a crop: the source's landmarks, the 2x3 similarity transform from
source pixels to crop pixels and a SHA-256 of the crop file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from occau.data.folds import fold_split
from occau.data.layout import INFO_FILE, MANIFEST_FILE
from occau.data.sample import FaceSample
from occau.data.statistics import class_weights


@dataclass
class SequenceLabels:
    """Labels of one sequence as read from the provider's files (frames in file order)."""

    dataset: str
    subject: str
    sequence: str  # BP4D task ("T1"), DISFA camera ("left")
    frames: np.ndarray  # (T,) int64 frame numbers: BP4D CSV column '0', DISFA 0-based video frame
    labels: np.ndarray  # (T, N) uint8 0/1, 0 where unknown
    mask: np.ndarray  # (T, N) bool, False where unknown (BP4D code 9)
    intensity: np.ndarray  # (T, N) float32, NaN where not coded
    source: str  # the label file(s), for messages

    def __len__(self) -> int:
        return len(self.frames)


FrameRecord = dict[str, Any]
"""One manifest line: subject, sequence, frame, image (path relative to the prepared folder), labels (N ints, 0 where
unknown), mask (N 0/1), intensity (N numbers or null), status ("detected", "reused", "aligned-input"), detector,
score, landmarks (5 x [x, y] in source pixels or null), transform (2 x 3, source -> crop pixels), transform_from
(frame whose transform was reused, or null), sha256 (of the crop file)."""


def read_info(root: Path) -> dict:
    path = Path(root) / INFO_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: {root} is not a folder written by `occau prepare`")
    return json.loads(path.read_text())


def read_manifest(root: Path) -> list[FrameRecord]:
    path = Path(root) / MANIFEST_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: `occau prepare` has not finished on {root} (run it again)")
    records = []
    with path.open() as f:
        for i, line in enumerate(f, start=1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}, line {i}: not valid JSON ({e})") from None
    return records


def _intensity(values: list) -> np.ndarray:
    return np.array([np.nan if v is None else v for v in values], dtype=np.float32)


class PreparedDataset(torch.utils.data.Dataset):
    """Aligned crops of a prepared BP4D/DISFA folder as ``FaceSample`` dicts, split like SynthFACS.

    ``split`` is ``train``, ``val`` (held-out training subjects), ``test`` (the fold's test part), ``trainval`` or
    ``all``; ``fold`` k tests part k (PROTOCOL §4).
    """

    def __init__(
        self, root: str | Path, split: str = "train", fold: int = 1, val_subject_fraction: float = 1 / 6
    ) -> None:
        self.root = Path(root)
        self.info = read_info(self.root)
        self.dataset: str = self.info["dataset"]
        self.aus: tuple[int, ...] = tuple(self.info["aus"])
        self.size: int = int(self.info["size"])
        self.split, self.fold = split, fold
        if self.dataset == "faces" and split != "all":
            raise ValueError(f"{self.root}: an unlabelled face collection (occau prepare faces) has no labels or "
                             f"folds; only MAE pretraining reads it (split 'all'), not split {split!r}")
        if fold == "all" and split in ("val", "test"):
            raise ValueError(f"{self.root}: data.fold=all trains on every subject; it has no {split!r} subjects")
        if split == "all":
            subjects = None
        else:
            subjects = set(fold_split(self.dataset, fold, val_subject_fraction).subjects(split))
        self.records = [r for r in read_manifest(self.root) if subjects is None or r["subject"] in subjects]
        self.subjects = tuple(dict.fromkeys(r["subject"] for r in self.records))

    def __len__(self) -> int:
        return len(self.records)

    def label_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(labels float32 0/1, label_mask bool, intensity float32 NaN where not coded), each (T, N), for the whole
        split without reading an image (as ``SynthFACS.label_arrays``)."""
        n = len(self.aus)
        mask = np.array([r["mask"] for r in self.records], dtype=bool).reshape(-1, n)
        labels = np.array([r["labels"] for r in self.records], dtype=np.float32).reshape(-1, n) * mask
        intensity = np.array([_intensity(r["intensity"]) for r in self.records], dtype=np.float32).reshape(-1, n)
        return labels, mask, intensity

    def class_weights(self) -> np.ndarray:
        """WA-loss weights of this split's labels (use on ``split="train"``), unknown labels left out."""
        labels, mask, _ = self.label_arrays()
        return class_weights(labels, mask)

    def __getitem__(self, index: int) -> FaceSample:
        r = self.records[index]
        path = self.root / r["image"]
        bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if bgr is None:
            raise FileNotFoundError(f"{path}: crop listed in {self.root / MANIFEST_FILE} cannot be read")
        if bgr.shape[:2] != (self.size, self.size):
            raise ValueError(f"{path}: crop is {bgr.shape[1]}x{bgr.shape[0]}, {INFO_FILE} says {self.size}")
        mask = np.array(r["mask"], dtype=bool)
        return FaceSample(
            image=np.ascontiguousarray(bgr[:, :, ::-1]),
            labels=np.where(mask, np.array(r["labels"], dtype=np.float32), 0.0).astype(np.float32),
            label_mask=mask,
            intensity=_intensity(r["intensity"]),
            subject=r["subject"],
            sequence=r["sequence"],
            frame=int(r["frame"]),
        )
