"""ME-GraphAU's edge (AU co-occurrence) targets and loss.

Every ordered AU pair ``e = j * N + k`` (``j`` the end node, ``k`` the start node, self-pairs included; UPSTREAM
§2.4) is classified into 4 states ``2 * a_j + a_k``: 0 neither, 1 only ``k``, 2 only ``j``, 3 both. The stage-2
objective is ``wa + lambda * edge`` (lambda 0.05 BP4D, 0.01 DISFA); combining them is the trainer's job.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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


def edge_loss(edge_logits: Tensor, relations: Tensor, valid: Tensor | None = None) -> Tensor:
    """Cross-entropy of edge logits (B, N*N, 4) against pair states (B, N*N), mean over the valid entries.

    Without ``valid`` this is upstream's ``CrossEntropyLoss()(logits.view(-1, 4), rel.view(-1))``.
    """
    if edge_logits.shape[:-1] != relations.shape:
        raise ValueError(
            f"edge_logits {tuple(edge_logits.shape)} do not match relations {tuple(relations.shape)}: "
            "expected (B, N*N, 4) and (B, N*N)"
        )
    logits = edge_logits.reshape(-1, edge_logits.shape[-1])  # (B*N*N, 4)
    target = relations.reshape(-1)
    if valid is None:
        return F.cross_entropy(logits, target)
    valid = valid.reshape(-1).to(torch.bool)
    per_edge = F.cross_entropy(logits, target.masked_fill(~valid, 0), reduction="none")  # (B*N*N,)
    per_edge = torch.where(valid, per_edge, torch.zeros((), dtype=per_edge.dtype, device=per_edge.device))
    return per_edge.sum() / valid.sum().clamp(min=1)
