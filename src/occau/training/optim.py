"""AdamW with the upstream conventions and a per-step warm-up + half-cycle cosine schedule.

MAE excludes 1-D parameters (norms, biases) and position/cls tokens from weight decay; ME-GraphAU decays everything.
Both schedule per iteration, which is why the scheduler steps every optimizer step, not every epoch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

from occau.training.config import OptimConfig


def param_groups(model: nn.Module, weight_decay: float, decay_1d: bool, lr: float | None = None) -> list[dict]:
    """Trainable parameters split into decayed and non-decayed groups (``decay_1d`` keeps upstream ME-GraphAU's
    decay-everything behaviour), and by learning-rate scale when the model has ``lr_scales()`` (layer-wise decay
    when fine-tuning a pretrained encoder); a group's ``lr`` is ``lr * scale``."""
    skip = set(getattr(model, "no_weight_decay", lambda: set())())
    scales = getattr(model, "lr_scales", lambda: {})()
    groups: dict[tuple[bool, float], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_1d = param.ndim <= 1 or name.endswith(".bias") or name in skip
        key = (not (is_1d and not decay_1d), scales.get(name, 1.0))
        groups.setdefault(key, []).append(param)
    out = []
    for (decayed, scale), params in sorted(groups.items(), key=lambda kv: (not kv[0][0], -kv[0][1])):
        group = {"params": params, "weight_decay": weight_decay if decayed else 0.0}
        if lr is not None:
            group["lr"] = lr * scale
        out.append(group)
    return out


def build_optimizer(params: Iterable[dict], config: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.AdamW(list(params), lr=config.lr, betas=tuple(config.betas))


def cosine_lambda(total_steps: int, warmup_steps: int, min_ratio: float):
    """Multiplier of the base lr at a step: linear warm-up, then cosine to ``min_ratio``."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def configure_adamw(models: Iterable[nn.Module], config: OptimConfig, decay_1d: bool, stepping_batches: int) -> dict:
    """Lightning's ``configure_optimizers`` answer for the trained ``models``: AdamW + the per-step schedule."""
    groups = [g for model in models for g in param_groups(model, config.weight_decay, decay_1d, lr=config.lr)]
    optimizer = build_optimizer(groups, config)
    steps_per_epoch = int(stepping_batches // max(1, config.epochs))
    return {"optimizer": optimizer, "lr_scheduler": build_scheduler(optimizer, config, steps_per_epoch)}


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, steps_per_epoch: int) -> dict:
    """The Lightning scheduler dict, stepping every iteration."""
    total = max(1, config.epochs * steps_per_epoch)
    warmup = int(round(config.warmup_epochs * steps_per_epoch))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, cosine_lambda(total, warmup, config.min_lr / config.lr))
    return {"scheduler": schedule, "interval": "step"}
