"""AU-pair relation states: what ME-GraphAU's edge branch is trained to classify, computed from labels alone.

Every ordered AU pair ``e = j * N + k`` (``j`` the end node, ``k`` the start node, self-pairs included; UPSTREAM
§2.4) is in one of 4 states ``2 * a_j + a_k``: 0 neither, 1 only ``k``, 2 only ``j``, 3 both. A pair's state is a
property of the labels, not of any model or loss, so it lives with the data: the label statistics and ME-GraphAU's
list files (``occau.data.statistics``, ``occau.data.megraphau_lists``) need it as much as the edge and distillation
losses (``occau.losses.edge``, ``occau.losses.distill``), and the data step comes before the losses.
"""

from __future__ import annotations

import torch
from torch import Tensor


def relation_labels(labels: Tensor) -> Tensor:
    """Binary AU labels (B, N) -> pair states (B, N*N) long with ``rel[:, j*N + k] = 2 * a_j + a_k``.

    Labels must be 0/1; set unknown ones to 0 and drop their pairs with :func:`relation_valid`.
    """
    if labels.ndim != 2:
        raise ValueError(f"labels must be (B, N), got shape {tuple(labels.shape)}")
    if ((labels != 0) & (labels != 1)).any():
        raise ValueError("labels must be 0 or 1 (unknown labels, e.g. BP4D code 9, belong in a label mask)")
    a = labels.long()
    return (2 * a[:, :, None] + a[:, None, :]).flatten(1)  # (B, N, N) -> (B, N*N), row j = end, column k = start


def relation_valid(label_mask: Tensor) -> Tensor:
    """Known-label mask (B, N) -> (B, N*N) bool: a pair is valid when both of its AU labels are known."""
    if label_mask.ndim != 2:
        raise ValueError(f"label_mask must be (B, N), got shape {tuple(label_mask.shape)}")
    m = label_mask.to(torch.bool)
    return (m[:, :, None] & m[:, None, :]).flatten(1)
