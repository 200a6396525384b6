"""From uint8 face crops to model input: every model in occau (MAE, teacher, student) uses ImageNet statistics."""

from __future__ import annotations

import numpy as np
import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_model_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 RGB images (B, S, S, 3) or (S, S, 3) -> float32 normalised (B, 3, S, S) or (3, S, S)."""
    x = torch.as_tensor(images)
    if x.dtype != torch.uint8:
        raise TypeError(f"expected uint8 images, got {x.dtype}")
    x = x.movedim(-1, -3).float().div_(255.0)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x - mean) / std


def to_uint8_image(x: torch.Tensor) -> torch.Tensor:
    """Inverse of ``to_model_input``: normalised (..., 3, S, S) -> uint8 (..., S, S, 3), clamped."""
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(3, 1, 1)
    x = (x * std + mean).clamp(0, 1).mul(255).round().to(torch.uint8)
    return x.movedim(-3, -1)
