"""Student bundles: the frozen MAE encoder and the latent-mining student in one self-describing file.

A student is useless without the exact encoder whose latents it was trained on, so both travel together
(keys ``encoder.*`` and ``student.*``); ``occau detect`` needs nothing else.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from occau.checkpoints.io import CheckpointError, load_checkpoint, load_exact
from occau.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from occau.models.mae import MAEConfig, MaskedAutoencoderViT
from occau.models.student import LatentStudent, StudentConfig
from occau.config import from_dict


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


def student_meta(config: StudentConfig, encoder: MaskedAutoencoderViT, distillation: Any = None) -> dict[str, Any]:
    """The self-description of a student bundle (the caller adds provenance: data, AUs, licence)."""
    c = encoder.config
    meta = {"kind": "student", "model": asdict(config), "encoder": asdict(c),
            "input_size": [c.in_chans, c.img_size, c.img_size],
            "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}}
    if distillation is not None:
        meta["distillation"] = asdict(distillation)
    return meta


def _part(state: dict, prefix: str) -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
