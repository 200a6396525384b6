"""Where and in what arithmetic a trained model runs at inference: the device, and the autocast precision.

Training precision is Lightning's (``trainer.precision``: ``auto`` = bf16-mixed on GPUs that support it); this is the
inference side, shared by evaluation and ``occau detect``. Mixed precision runs the matrix products in bf16/fp16 and
keeps parameters, normalisation and the losses in fp32 (``at_least_fp32``), so no module may assume that two tensors
it combines have one dtype (``tests/test_mixed_precision.py`` runs every model, loss and stage under autocast).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}  # name -> autocast dtype (None: off)


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto``: the first CUDA device when there is one, else the CPU; anything else as torch reads it."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(device: torch.device, precision: str) -> AbstractContextManager:
    """The autocast context of ``precision`` on ``device`` (a no-op for fp32)."""
    dtype = PRECISIONS[check_precision(precision)]
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in fp32 when it is a half-precision (bf16/fp16) tensor, else unchanged (fp64 stays fp64, as upstream's
    float64 class weights need). The losses call it on what they take in: they are (B, N)- or (B, N*N, C)-sized, so
    fp32 there costs nothing measurable, while fp16 has no 1e-8 and bf16 keeps 3 significant digits."""
    return x.to(torch.promote_types(x.dtype, torch.float32))
