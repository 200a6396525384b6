"""Label statistics of a training split: counts, ME-GraphAU's class weights, AU-pair states of every frame.

The weight formula is upstream's (UPSTREAM §2.7): with r_i the occurrence rate of AU i, w_i = (1/r_i) / sum_j(1/r_j)
* N, so the weights average 1. Upstream counts every label > 0 over all frames, so a BP4D 9 counts as a positive;
here r_i = positives / known frames of AU i, which is the same number wherever nothing is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from occau.data.relations import relation_labels, relation_valid


@dataclass(frozen=True)
class LabelCounts:
    """Per-AU counts over a set of frames (all arrays (N,) int64)."""

    aus: tuple[int, ...]
    frames: int
    positive: np.ndarray
    negative: np.ndarray
    unknown: np.ndarray

    def as_dict(self) -> dict:
        return {
            "frames": self.frames,
            "per_au": {
                f"AU{au}": {"positive": int(p), "negative": int(n), "unknown": int(u)}
                for au, p, n, u in zip(self.aus, self.positive, self.negative, self.unknown)
            },
        }


def _check(labels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels, mask = np.asarray(labels), np.asarray(mask, dtype=bool)
    if labels.ndim != 2 or labels.shape != mask.shape:
        raise ValueError(f"labels {labels.shape} and mask {mask.shape} must both be (T, N)")
    if not np.isin(labels[mask], (0, 1)).all():
        raise ValueError("known labels must be 0 or 1")
    return labels, mask


def label_counts(labels: np.ndarray, mask: np.ndarray, aus: tuple[int, ...]) -> LabelCounts:
    """Positives, negatives and unknowns per AU; labels (T, N) 0/1, mask (T, N) True where known."""
    labels, mask = _check(labels, mask)
    pos = ((labels == 1) & mask).sum(0)
    known = mask.sum(0)
    return LabelCounts(tuple(aus), labels.shape[0], pos, known - pos, labels.shape[0] - known)


def occurrence_rates(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """r_i = positives / known frames of AU i, shape (N,) float64."""
    labels, mask = _check(labels, mask)
    known = mask.sum(0)
    if (known == 0).any():
        raise ValueError(f"AU column(s) {np.flatnonzero(known == 0).tolist()} have no known label")
    return ((labels == 1) & mask).sum(0) / known


def weights_from_rates(rates: np.ndarray) -> np.ndarray:
    """Upstream's inverse-frequency weights, normalised to mean 1; (N,) float64."""
    rates = np.asarray(rates, dtype=np.float64)
    if (rates <= 0).any():
        raise ValueError(f"AU column(s) {np.flatnonzero(rates <= 0).tolist()} have no positive frame: weight undefined")
    inv = 1.0 / rates
    return inv / inv.sum() * len(inv)


def class_weights(labels: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-AU weights for the WA loss from training labels (T, N), unknown labels left out; (N,) float64."""
    return weights_from_rates(occurrence_rates(labels, mask))


def pair_states(labels: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AU-pair states of every frame (the edge-loss targets and ME-GraphAU's relation file rows)
    ``rel[:, j*N + k] = 2*a_j + a_k`` (T, N*N) int64, and their validity (T, N*N) bool.

    A pair is valid only when both AU labels are known; invalid pairs hold the code of 0 for the unknown AU.
    """
    labels, mask = _check(labels, mask)
    rel = relation_labels(torch.from_numpy(np.where(mask, labels, 0).astype(np.int64)))
    valid = relation_valid(torch.from_numpy(mask))
    return rel.numpy(), valid.numpy()
