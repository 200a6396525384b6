"""Student bundles: the frozen MAE encoder and the latent-mining student in one self-describing file.

A student is useless without the exact encoder whose latents it was trained on, so both travel together
(keys ``encoder.*`` and ``student.*``); ``occau detect`` needs nothing else.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from occau.checkpoints.io import CheckpointError, load_checkpoint, load_exact
from occau.models.mae import MAEConfig, MaskedAutoencoderViT
from occau.models.student import LatentStudent, StudentConfig
from occau.training.config import from_dict


def load_student(path: str | Path) -> tuple[MaskedAutoencoderViT, LatentStudent, dict[str, Any]]:
    """``(encoder, student, meta)`` in eval mode, loaded strictly."""
    state, meta = load_checkpoint(path)
    if meta.get("kind") != "student":
        raise CheckpointError(f"{path}: a {meta.get('kind')!r} checkpoint, not a student bundle")
    encoder = MaskedAutoencoderViT(from_dict(MAEConfig, meta["encoder"]), decoder=False)
    student = LatentStudent(from_dict(StudentConfig, meta["model"]))
    load_exact(encoder, _part(state, "encoder."), path)
    load_exact(student, _part(state, "student."), path)
    return encoder.eval(), student.eval(), meta


def _part(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
