"""ME-GraphAU's weighted asymmetric (WA) loss on AU probabilities, and the class weights it is used with.

The inputs are the teacher's cosine scores in [0, 1], used directly as probabilities (UPSTREAM §2.2), so there is
no sigmoid here. Negatives are down-weighted by the stop-gradient prediction itself (an asymmetric focusing
factor): confidently rejected negatives cost almost nothing, false positives cost their full log-loss. Per-AU class
weights counter the strong imbalance between frequent and rare AUs.

Unlike the official code this does not flip ``torch.set_grad_enabled`` globally; ``detach`` gives the same gradient.
Under mixed precision the probabilities are promoted to fp32 first: ``eps`` (1e-8) is zero in fp16 and ``1 - x``
near 1 keeps two significant digits in bf16, so ``log`` would turn a confident score into -inf or a coarse step.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from occau.runtime import at_least_fp32


class WeightedAsymmetricLoss(nn.Module):
    """``L = -mean_{b,i} w_i [y log(max(x, eps)) + sg(x) (1 - y) log(max(1 - x, eps))]`` (UPSTREAM §2.7).

    ``weight`` (N,) keeps its dtype, as upstream: float64 weights (``np.loadtxt``) give a float64 loss. With a
    ``label_mask`` (True = known) unknown entries contribute nothing and the sum is divided by the number of known
    entries, which equals the official ``B * N`` mean when every label is known.
    """

    def __init__(self, weight: Tensor | None = None, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        if weight is not None:
            weight = torch.as_tensor(weight)
            if weight.ndim != 1:
                raise ValueError(f"WA loss weight must be 1-D (N,), got shape {tuple(weight.shape)}")
        # Not persistent: class weights are a property of the training fold, not of the model's checkpoint.
        self.register_buffer("weight", weight, persistent=False)

    def forward(self, probs: Tensor, labels: Tensor, label_mask: Tensor | None = None) -> Tensor:
        """probs, labels, label_mask: (B, N). Returns a scalar."""
        if probs.shape != labels.shape:
            raise ValueError(f"probs {tuple(probs.shape)} and labels {tuple(labels.shape)} must have the same shape")
        probs = at_least_fp32(probs)
        labels = labels.to(probs.dtype)
        focus = probs.detach()  # sg(x): the focusing factor is a constant in backward
        loss = labels * torch.log(probs.clamp(min=self.eps))
        loss = loss + focus * (1 - labels) * torch.log((1 - probs).clamp(min=self.eps))  # (B, N)
        if self.weight is not None:
            if self.weight.numel() != probs.shape[-1]:
                raise ValueError(
                    f"WA loss has {self.weight.numel()} class weights but probs have {probs.shape[-1]} AUs"
                )
            loss = loss * self.weight
        if label_mask is None:
            return -loss.mean()
        label_mask = label_mask.to(torch.bool)
        if label_mask.shape != probs.shape:
            raise ValueError(f"label_mask {tuple(label_mask.shape)} must have the shape of probs {tuple(probs.shape)}")
        # where() rather than multiply: a masked 0 * log(eps) is fine, but a masked NaN input must not leak in.
        loss = torch.where(label_mask, loss, torch.zeros((), dtype=loss.dtype, device=loss.device))
        return -loss.sum() / label_mask.sum().clamp(min=1)

