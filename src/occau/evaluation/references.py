"""Two trivial predictors every method must beat, scored on the same test faces and folds as the methods.

* **all AUs present** predicts every AU present on every face. Its F1 for an AU with test base rate q is
  ``2q / (1 + q)`` (precision q, recall 1), which is high for frequent AUs: a method below it has learnt nothing
  that F1 rewards.
* **WA-optimal constant** is the constant output a model falls into when it learns nothing from the image: the
  one that minimises the WA loss given the training split's base rate p of each AU (:func:`wa_optimal_constant`).
  It predicts an AU always present when ``p >= 1/3`` and never otherwise, so it scores ``2q / (1 + q)`` on the
  first AUs and 0 on the others (the metric's F1 with no predicted positive): never above *all AUs present*.

Neither depends on the image, so both are the same under every occlusion condition.
"""

from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset, Subset

from occau.metrics import f1_scores

REFERENCE_LABELS = {"all_present": "all AUs present", "wa_constant": "WA-optimal constant"}


def wa_optimal_constant(base_rate: np.ndarray | float) -> np.ndarray:
    """The constant probability x* that a model trained with the WA loss settles at, per AU of base rate p.

    For a constant output x the expected WA loss of one AU is ``-[p log x + sg(x) (1 - p) log(1 - x)]`` (the class
    weight only scales it). With the focusing factor sg(x) held constant the gradient is
    ``-p / x + sg(x) (1 - p) / (1 - x)``; at the fixed point sg(x) = x it vanishes when
    ``p (1 - x) = (1 - p) x^2``, i.e. ``(1 - p) x^2 + p x - p = 0``, whose root in [0, 1] is
    ``x* = (-p + sqrt(p^2 + 4 p (1 - p))) / (2 (1 - p))`` (and ``x* = 1`` at p = 1). The quadratic is -p at x = 0
    and rises on [0, 1] (slope ``2 (1 - p) x + p > 0``), so ``x* >= 1/2`` exactly when its value at 1/2,
    ``(1 - 3p) / 4``, is <= 0: the AU is predicted present at the metric's 0.5 threshold iff ``p >= 1/3``.
    """
    p = np.asarray(base_rate, dtype=np.float64)  # (N,)
    if ((p < 0) | (p > 1)).any():
        raise ValueError(f"base rates must lie in [0, 1], got {p}")
    a = np.where(p < 1, 1 - p, 1.0)  # avoid 0/0 at p = 1, fixed below
    x = (-p + np.sqrt(p * p + 4 * p * (1 - p))) / (2 * a)
    return np.where(p < 1, x, 1.0)


def base_rates(labels: np.ndarray, label_mask: np.ndarray) -> np.ndarray:
    """Positives / known labels per AU (N,); 0 for an AU with no known label."""
    known = label_mask.sum(0)  # (N,)
    return ((labels == 1) & label_mask).sum(0) / np.maximum(known, 1)


def reference_scores(
    test_labels: np.ndarray, test_mask: np.ndarray, train_labels: np.ndarray, train_mask: np.ndarray
) -> dict[str, dict]:
    """F1 of both references on one fold's test labels (F, N); the WA constant comes from the training labels.

    Scored with the project's metric (:func:`f1_scores`: threshold 0.5, unknown labels masked), so the numbers
    compare with the methods' as they are. Returns ``{name: {"f1_mean", "f1_per_au", "n_frames", ...}}``; the WA
    constant also keeps the training base rates and its output per AU.
    """
    test_mask = np.asarray(test_mask, dtype=bool)
    ones = np.ones(test_labels.shape, dtype=np.float64)  # (F, N)
    rate = base_rates(np.asarray(train_labels), np.asarray(train_mask, dtype=bool))  # (N,)
    constant = wa_optimal_constant(rate)  # (N,)
    out = {}
    for name, probs in (("all_present", ones), ("wa_constant", ones * constant)):
        per_au, mean = f1_scores(probs, test_labels, test_mask)
        out[name] = {"f1_mean": mean, "f1_per_au": per_au.tolist(), "n_frames": int(test_labels.shape[0])}
    out["wa_constant"] |= {"train_base_rate": rate.tolist(), "output": constant.tolist()}
    return out


def face_labels(faces: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(labels, label_mask), each (F, N), of a face dataset or a Subset of one, without reading an image."""
    if isinstance(faces, Subset):
        labels, mask = face_labels(faces.dataset)
        index = np.asarray(faces.indices, dtype=np.int64)
        return labels[index], mask[index]
    labels, mask = faces.label_arrays()[:2]
    return np.asarray(labels), np.asarray(mask, dtype=bool)


def fold_references(train_faces: Dataset, test_faces: Dataset) -> dict[str, dict]:
    """:func:`reference_scores` of one fold from its training split and the test faces the methods are scored on."""
    return reference_scores(*face_labels(test_faces), *face_labels(train_faces))
