"""Where the student runs: one small interface, ``StudentRunner``, chosen once by ``runtime``.

``TorchStudentRunner`` runs a student bundle in PyTorch (the encoder on the visible tokens, then the head);
``occau.inference.onnx_student.OnnxStudentRunner`` runs an exported ``.onnx`` file on ONNX Runtime. Everything else in
the detector is the same for both, so a runtime is a class, not ``if`` branches.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from occau.models.mae import MaskedAutoencoderViT
from occau.runtime import autocast, check_precision, resolve_device

RUNTIMES = ("torch", "onnx")


class StudentRunner(Protocol):
    """Where the model runs: the one thing ``Detector.predict`` needs, so a runtime is a class, not ``if`` branches."""

    meta: dict[str, Any]  # the student bundle's self-description (``aus``, ``normalization``, ...)
    device: torch.device  # where ``Detector.predict`` puts the normalised batch
    size: int  # S, the side of the aligned crop
    patch: int  # p, the side of a patch token
    num_aus: int  # N

    def run(self, images: torch.Tensor, token_mask: torch.Tensor) -> tuple[np.ndarray, float]:
        """Normalised images (B, 3, S, S) float32 and token mask (B, L) bool (True = covered) -> (probabilities
        (B, N) float32, seconds spent in the head). A runtime that cannot tell the head apart returns 0 and the
        whole call counts as encoder time."""
        ...


class TorchStudentRunner:
    """A student bundle in PyTorch: ``encode_visible`` on the visible tokens, then the student head."""

    def __init__(self, encoder: MaskedAutoencoderViT, student: torch.nn.Module, meta: dict[str, Any],
                 device: str = "auto", precision: str = "fp32") -> None:
        self.precision = check_precision(precision)
        self.device = resolve_device(device)
        self.encoder, self.student = encoder.eval().to(self.device), student.eval().to(self.device)
        self.meta = meta
        self.size, self.patch = encoder.config.img_size, encoder.config.patch_size
        self.num_aus = student.config.num_aus

    @classmethod
    def load(cls, checkpoint: str | Path, device: str = "auto", precision: str = "fp32") -> TorchStudentRunner:
        from occau.checkpoints.student import load_student

        if Path(checkpoint).suffix == ".onnx":
            raise ValueError(f"{checkpoint}: an ONNX model; run it with --runtime onnx (runtime='onnx')")
        encoder, student, meta = load_student(checkpoint)
        return cls(encoder, student, meta, device, precision)

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def run(self, images: torch.Tensor, token_mask: torch.Tensor) -> tuple[np.ndarray, float]:
        with autocast(self.device, self.precision):
            latents = self.encoder.encode_visible(images, token_mask)
            self._sync()
            t0 = time.perf_counter()
            probs = self.student(latents).probs.float()  # (B, N)
            self._sync()
        head = time.perf_counter() - t0
        return probs.cpu().numpy(), head


def open_runner(checkpoint: str | Path, runtime: str = "torch", device: str = "auto",
                precision: str = "fp32") -> StudentRunner:
    """The runner of ``runtime``: ``torch`` reads a student bundle (.safetensors), ``onnx`` a file written by
    ``occau export onnx`` (it needs the optional onnxruntime: ``MissingExtraError`` without it)."""
    if runtime == "torch":
        return TorchStudentRunner.load(checkpoint, device, precision)
    if runtime == "onnx":
        from occau.inference.onnx_student import OnnxStudentRunner

        return OnnxStudentRunner(checkpoint, device=device, precision=precision)
    raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
