"""What the ``occau detect`` tests share: a tiny random-weight student bundle, the astronaut photograph, a video writer.

The numbers such a bundle gives mean nothing about AUs; the tests that use it check the pipeline around the model
(geometry, visibility, batching, tracking, runtimes, files)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import cv2
import numpy as np
import torch

from occau.checkpoints.io import save_checkpoint
from occau.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from occau.models.mae import MAEConfig, MaskedAutoencoderViT
from occau.models.student import LatentStudent, StudentConfig

AUS = [1, 2, 4, 6, 7, 10, 12, 14, 15, 17, 23, 24]
SIZE, PATCH = 64, 8


def save_tiny_student(path: Path, seed: int = 0) -> Path:
    """A 64-px, patch-8 student bundle (encoder width 64, depth 2; head width 32) with random weights at ``path``."""
    torch.manual_seed(seed)
    mae = MAEConfig(img_size=SIZE, patch_size=PATCH, embed_dim=64, depth=2, num_heads=2, decoder_embed_dim=32,
                    decoder_depth=1, decoder_num_heads=2)
    st = StudentConfig(embed_dim=64, num_patches=mae.num_patches, num_aus=len(AUS), dim=32, num_heads=2)
    encoder, student = MaskedAutoencoderViT(mae, decoder=False), LatentStudent(st)
    state = {**{f"encoder.{k}": v for k, v in encoder.state_dict().items()},
             **{f"student.{k}": v for k, v in student.state_dict().items()}}
    meta = {"kind": "student", "model": asdict(st), "encoder": asdict(mae), "aus": AUS, "input_size": SIZE,
            "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
            "license": "test weights", "data": {"dataset": "random"}}
    return save_checkpoint(path, state, meta)


def astronaut_bgr() -> np.ndarray:
    """scikit-image's astronaut photograph (public domain), BGR (512, 512, 3)."""
    from skimage import data

    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


def make_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (w, h))
    assert writer.isOpened()
    for f in frames:
        writer.write(f)
    writer.release()
    return path
