"""ME-GraphAU's edge (AU co-occurrence) loss.

Every ordered AU pair ``e = j * N + k`` (``j`` the end node, ``k`` the start node, self-pairs included; UPSTREAM
§2.4) is classified into 4 states ``2 * a_j + a_k``: 0 neither, 1 only ``k``, 2 only ``j``, 3 both. The targets are
a property of the labels, made by ``occau.data.relations`` (``relation_labels``, ``relation_valid``). The stage-2
objective is ``wa + lambda * edge`` (lambda 0.05 BP4D, 0.01 DISFA); combining them is the trainer's job.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from occau.runtime import at_least_fp32


def edge_loss(edge_logits: Tensor, relations: Tensor, valid: Tensor | None = None) -> Tensor:
    """Cross-entropy of edge logits (B, N*N, 4) against pair states (B, N*N), mean over the valid entries.

    Without ``valid`` this is upstream's ``CrossEntropyLoss()(logits.view(-1, 4), rel.view(-1))``.
    """
    if edge_logits.shape[:-1] != relations.shape:
        raise ValueError(
            f"edge_logits {tuple(edge_logits.shape)} do not match relations {tuple(relations.shape)}: "
            "expected (B, N*N, 4) and (B, N*N)"
        )
    logits = at_least_fp32(edge_logits).reshape(-1, edge_logits.shape[-1])  # (B*N*N, 4), fp32 under autocast
    target = relations.reshape(-1)
    if valid is None:
        return F.cross_entropy(logits, target)
    valid = valid.reshape(-1).to(torch.bool)
    per_edge = F.cross_entropy(logits, target.masked_fill(~valid, 0), reduction="none")  # (B*N*N,)
    per_edge = torch.where(valid, per_edge, torch.zeros((), dtype=per_edge.dtype, device=per_edge.device))
    return per_edge.sum() / valid.sum().clamp(min=1)
