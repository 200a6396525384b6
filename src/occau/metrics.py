"""Per-AU F1 and accuracy as ME-GraphAU computes them (UPSTREAM §2.9, PROTOCOL §3).

An AU is predicted present when its probability is ``>= 0.5``. TP/FP/TN/FN are counted per AU over every frame of
the test fold (not per video), then ``F1 = 2PR / (P + R + 1e-20)`` with ``P = TP / (TP + FP + 1e-20)`` and
``R = TP / (TP + FN + 1e-20)``: an AU with no positive and none predicted scores 0, not NaN, and still counts in the
unweighted mean. Where upstream asserts on any label other than 0/1, a frame whose label is unknown (BP4D code 9)
is left out for that AU only, through ``label_mask``.

:class:`AUF1` is a ``torchmetrics.Metric`` so that counts are summed across DDP processes; :func:`f1_scores` is the
one-shot function for arrays already in memory.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor
from torchmetrics import Metric

EPS = 1e-20


def confusion_counts(
    probs: Tensor, labels: Tensor, label_mask: Tensor | None = None, threshold: float = 0.5
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """TP, FP, TN, FN per AU (each (N,) int64) of probs/labels (F, N), ignoring entries where the mask is False."""
    if probs.shape != labels.shape or probs.ndim != 2:
        raise ValueError(f"probs {tuple(probs.shape)} and labels {tuple(labels.shape)} must both be (frames, AUs)")
    known = torch.ones_like(labels, dtype=torch.bool) if label_mask is None else label_mask.to(torch.bool)
    if known.shape != labels.shape:
        raise ValueError(f"label_mask {tuple(known.shape)} must have the shape of labels {tuple(labels.shape)}")
    bad = known & (labels != 0) & (labels != 1)
    if bad.any():
        frame, au = (int(i) for i in torch.nonzero(bad)[0])
        raise ValueError(
            f"label {labels[frame, au].item()} at frame {frame}, AU column {au} is neither 0 nor 1; "
            "mark unknown labels (e.g. BP4D code 9) False in label_mask"
        )
    pred = probs >= threshold
    pos = labels == 1
    neg = labels == 0

    def count(x: Tensor) -> Tensor:
        return (x & known).sum(0, dtype=torch.int64)

    return count(pred & pos), count(pred & neg), count(~pred & neg), count(~pred & pos)


def f1_from_counts(tp: Tensor, fp: Tensor, fn: Tensor) -> Tensor:
    """Per-AU F1 (float64) with upstream's 1e-20 guards."""
    tp, fp, fn = (x.to(torch.float64) for x in (tp, fp, fn))
    precision = tp / (tp + fp + EPS)
    recall = tp / (tp + fn + EPS)
    return 2 * precision * recall / (precision + recall + EPS)


def accuracy_from_counts(tp: Tensor, fp: Tensor, tn: Tensor, fn: Tensor) -> Tensor:
    """Per-AU accuracy (float64) over the frames whose label is known; 0 for an AU with no known frame."""
    total = (tp + fp + tn + fn).to(torch.float64)
    return (tp + tn).to(torch.float64) / total.clamp(min=1)


def f1_scores(probs, labels, label_mask=None, threshold: float = 0.5) -> tuple[np.ndarray, float]:
    """Per-AU F1 (N,) and its unweighted mean for probs/labels (F, N) (tensors or arrays)."""
    probs, labels = torch.as_tensor(probs), torch.as_tensor(labels)
    label_mask = None if label_mask is None else torch.as_tensor(label_mask)
    tp, fp, _, fn = confusion_counts(probs, labels, label_mask, threshold)
    per_au = f1_from_counts(tp, fp, fn).cpu().numpy()
    return per_au, float(per_au.mean())


class AUF1(Metric):
    """Accumulates per-AU confusion counts over batches; ``compute`` returns F1 and accuracy, per AU and mean."""

    is_differentiable = False
    higher_is_better = True
    full_state_update = False

    def __init__(self, num_aus: int, threshold: float = 0.5, **kwargs):
        super().__init__(**kwargs)
        self.num_aus = num_aus
        self.threshold = threshold
        for name in ("tp", "fp", "tn", "fn"):
            self.add_state(name, default=torch.zeros(num_aus, dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, probs: Tensor, labels: Tensor, label_mask: Tensor | None = None) -> None:
        """probs, labels, label_mask: (B, N)."""
        if probs.shape[-1] != self.num_aus:
            raise ValueError(f"AUF1 was built for {self.num_aus} AUs but got probs of shape {tuple(probs.shape)}")
        tp, fp, tn, fn = confusion_counts(probs.detach(), labels, label_mask, self.threshold)
        self.tp += tp
        self.fp += fp
        self.tn += tn
        self.fn += fn

    def compute(self) -> dict[str, Tensor]:
        f1 = f1_from_counts(self.tp, self.fp, self.fn)
        acc = accuracy_from_counts(self.tp, self.fp, self.tn, self.fn)
        return {"f1_per_au": f1, "f1_mean": f1.mean(), "acc_per_au": acc, "acc_mean": acc.mean()}


# ---------------------------------------------------------------------------------------------------------------
# covered tokens: how well an occlusion estimate agrees with the true token mask


def token_counts(judged: Tensor, truth: Tensor) -> Tensor:
    """(B, L) bool estimate and true token masks (True = covered) -> (4,) int64 [tp, fp, fn, tokens]."""
    judged, truth = judged.to(torch.bool), truth.to(torch.bool)
    return torch.stack([(judged & truth).sum(), (judged & ~truth).sum(), (~judged & truth).sum(),
                        torch.tensor(truth.numel(), device=truth.device)]).to(torch.long)


def token_scores(counts) -> dict[str, float]:
    """Precision, recall and F1 of covered tokens, and the share of all tokens wrongly called covered, from summed
    :func:`token_counts`; a ratio with nothing to count is NaN (no covered token: no recall)."""
    tp, fp, fn, total = (float(c) for c in counts)
    precision = tp / (tp + fp) if tp + fp else float("nan")
    recall = tp / (tp + fn) if tp + fn else float("nan")
    f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan")
    return {"precision": precision, "recall": recall, "f1": f1, "false_cover": fp / total if total else float("nan")}
