"""The student as one ONNX graph (``occau export onnx``), and the runner behind ``occau detect --runtime onnx``.

The graph is the MAE encoder on the visible tokens, the readout and the head, from normalised images (B, 3, S, S)
float32 and the token mask (B, L) bool (True = occluded) to AU probabilities (B, N), with the student bundle's
``meta`` as JSON in the model's ``metadata_props`` (key ``occau``, as in the safetensors file).

Why a module of its own rather than exporting ``EncoderStudent``: ``encode_visible`` sizes its padded batch with
``int(num_visible.max())``, a Python number that an exporter freezes at the example's value. ``OnnxableStudent``
keeps that largest visible count K a tensor (a symbolic size in ``torch.export``), so the exported graph gathers
each face's visible tokens, pads to the K of the batch it is given and masks the padding out of attention, exactly
as PyTorch does: one file serves any batch size and any occlusion, the encoder's work still shrinks with occlusion,
and occluded tokens are never attended to. The exporter is torch's ``torch.export`` path (``dynamo=True``), which is
why the ``onnx`` extra includes onnxscript: the TorchScript path cannot keep K symbolic and is deprecated.

ONNX Runtime, onnx and onnxscript are optional (``pip install "occau[onnx]"``); this module imports them only when
used, so ``occau detect`` with the torch runtime never needs them.
"""

from __future__ import annotations

import importlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from occau.checkpoints.io import METADATA_KEY
from occau.models.mae import MaskedAutoencoderViT
from occau.models.student import EncoderStudent, LatentStudent
from occau.runtime import resolve_device

INPUTS = ("images", "token_mask")
OUTPUT = "probs"
DEFAULT_OPSET = 18  # torch's own ONNX opset for this exporter; lower ones go through a version converter
CHECK_ATOL = 1e-4  # largest |ONNX - PyTorch| probability the export check accepts (tests/test_onnx.py)
EXTRA = 'pip install "occau[onnx]"'


class MissingExtraError(ImportError):
    """An optional package of the ``onnx`` extra is not installed (a setup problem, not a bad file)."""


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional package, or fail with one line that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(f"{purpose} needs {module}, which is not installed: {EXTRA}") from err


# ---------------------------------------------------------------------------------------------------- the graph
class OnnxableStudent(nn.Module):
    """``EncoderStudent`` as a function of (images, token_mask) -> probs, written so that K stays symbolic.

    It shares the encoder's and the student's modules (and so their weights); only the visible-token gather and the
    attention mask are computed here, without the Python-level ``int()`` and ``if`` of ``encode_visible``.
    """

    def __init__(self, encoder: MaskedAutoencoderViT, student: LatentStudent) -> None:
        super().__init__()
        self.encoder, self.student = encoder, student

    def forward(self, images: Tensor, token_mask: Tensor) -> Tensor:
        """images (B, 3, S, S) normalised, token_mask (B, L) bool True = occluded -> probabilities (B, N)."""
        x, padding_mask, ids_keep = self.embed_visible(images, token_mask)
        attn_mask = ~padding_mask[:, None, None, :]  # (B, 1, 1, 1+K) "may attend"; always given: no data-dependent if
        for blk in self.encoder.blocks:
            x = blk(x, attn_mask=attn_mask)
        latents = self.encoder.finish_visible(x, padding_mask, ids_keep, token_mask)
        return self.student(latents).probs.float()

    def embed_visible(self, images: Tensor, token_mask: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``MaskedAutoencoderViT.embed_visible`` with K a tensor: -> (tokens (B, 1+K, D) cls first, padding_mask
        (B, 1+K) True = padded, ids_keep (B, K) spatial patch indices)."""
        batch, num_patches = token_mask.shape
        x = self.encoder.embed_patches(images)  # (B, L, D) with positions
        num_visible = (~token_mask).sum(dim=1)  # (B,)
        # K >= 1 even when every token is covered: the exporter would otherwise have to decide whether attention runs
        # over a single token; the extra slot is padding, masked like any other, so the result is the same.
        k = num_visible.max().clamp(min=1).item()
        torch._check(k >= 1)
        torch._check(k <= num_patches)
        cells = torch.arange(num_patches, device=token_mask.device)  # (L,)
        # Unique keys, so no stable sort is needed: visible patches first, then occluded ones, each in raster order.
        order = torch.argsort(token_mask.long() * num_patches + cells, dim=1)  # (B, L)
        ids_keep = order[:, :k]  # (B, K)
        padding = cells[:k].unsqueeze(0) >= num_visible.unsqueeze(1)  # (B, K)
        x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # (B, K, D)
        x = x.masked_fill(padding.unsqueeze(-1), 0.0)  # padded slots hold an occluded patch: blank it
        x = torch.cat([self.encoder._cls(batch), x], dim=1)  # (B, 1+K, D): the encoder's cls with its position
        padding_mask = torch.cat([padding.new_zeros(batch, 1), padding], dim=1)  # (B, 1+K)
        return x, padding_mask, ids_keep


EXAMPLE_SHARES = (0.0, 0.5, 1.0)  # occluded share per face of the export example: K = L
CHECK_SHARES = (0.25, 0.5, 0.75, 0.9, 1.0)  # ... and of the check after export: another batch size, K < L


def check_batch(size: int, num_patches: int, shares: tuple[float, ...], seed: int = 0) -> tuple[Tensor, Tensor]:
    """Random normalised images (B, 3, S, S) and token masks (B, L) with ``round(share * L)`` occluded tokens in
    random places per face: faces with different visible counts in one batch."""
    gen = torch.Generator().manual_seed(seed)
    images = torch.randn(len(shares), 3, size, size, generator=gen)
    token_mask = torch.zeros(len(shares), num_patches, dtype=torch.bool)  # (B, L)
    for face, share in enumerate(shares):
        token_mask[face, torch.randperm(num_patches, generator=gen)[: round(share * num_patches)]] = True
    return images, token_mask


# ---------------------------------------------------------------------------------------------------- export
def export_onnx(checkpoint: str | Path, out: str | Path, opset: int | None = None) -> tuple[Path, float]:
    """Export a student bundle to ``out`` -> (path, max |ONNX - PyTorch| over the example and the check batch).

    Raises ``MissingExtraError`` without the ``onnx`` extra, ``CheckpointError`` for a bad bundle, and ``ValueError``
    when the graph cannot be had at ``opset`` (torch converts down from its own opset and keeps its own when that
    fails) or when ONNX Runtime's probabilities differ from PyTorch's by more than ``CHECK_ATOL`` (``out`` removed).
    """
    from occau.checkpoints.student import load_student

    for name in ("onnx", "onnxscript", "onnxruntime"):
        require(name, "occau export onnx")
    encoder, student, meta = load_student(checkpoint)
    module = OnnxableStudent(encoder, student).eval()
    size, num_patches = encoder.config.img_size, encoder.config.num_patches
    images, token_mask = check_batch(size, num_patches, EXAMPLE_SHARES)
    with _quiet("onnxscript"):  # its optimiser logs every multi-output op it leaves alone, as a warning
        program = torch.onnx.export(
            module, (images, token_mask), dynamo=True, input_names=list(INPUTS), output_names=[OUTPUT],
            opset_version=opset or DEFAULT_OPSET, dynamic_shapes={"images": {0: "batch"}, "token_mask": {0: "batch"}},
            verbose=False,
        )
    written = program.model.opset_imports.get("")
    if written != (opset or DEFAULT_OPSET):
        raise ValueError(f"{checkpoint}: the exporter could not convert the graph to opset {opset} (it has opset "
                         f"{written}); not written")
    program.model.metadata_props[METADATA_KEY] = json.dumps(meta, sort_keys=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    program.save(str(out), external_data=False)  # one file (weights go beside it only past ONNX's 2 GB limit)
    reference = EncoderStudent(encoder, student).eval()
    diff = max(_max_difference(reference, out, images, token_mask),
               _max_difference(reference, out, *check_batch(size, num_patches, CHECK_SHARES, seed=1)))
    if not diff <= CHECK_ATOL:
        out.unlink(missing_ok=True)
        raise ValueError(f"{out}: ONNX Runtime's probabilities differ from PyTorch's by {diff:.2e} "
                         f"(> {CHECK_ATOL:g}) on the check batches; removed")
    return out, diff


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Only errors from ``logger_name`` while the block runs."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _max_difference(reference: EncoderStudent, path: Path, images: Tensor, token_mask: Tensor) -> float:
    """max |ONNX Runtime - PyTorch| over the probabilities of one batch; the reference is the PyTorch model
    ``occau detect --runtime torch`` runs, not the export's own rewrite of it."""
    with torch.inference_mode():
        expected = reference(images, token_mask).probs.float().numpy()  # (B, N)
    got, _ = OnnxStudentRunner(path).run(images, token_mask)
    return float(np.abs(got - expected).max())


# ---------------------------------------------------------------------------------------------------- the runner
class OnnxStudentRunner:
    """A ``StudentRunner`` (``occau.inference.runners``) over an exported student, on ONNX Runtime's CPU provider.

    Encoder and head are one graph, so ``run`` reports no head time: ``Detector.times.encoder`` holds both.
    ``threads``: intra-op threads, by default torch's (``occau detect --threads`` sets both).
    """

    def __init__(self, path: str | Path, device: str = "auto", precision: str = "fp32",
                 threads: int | None = None) -> None:
        ort = require("onnxruntime", "--runtime onnx")
        path = Path(path)
        _check_options(path, device, precision)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # noqa: BLE001 - ONNX Runtime raises its own types for unreadable models
            raise ValueError(f"{path}: ONNX Runtime cannot load it: {_first_line(err)}") from err
        self.meta = _read_meta(self.session, path)
        self.device = torch.device("cpu")
        self.size = int(self.meta["encoder"]["img_size"])
        self.patch = int(self.meta["encoder"]["patch_size"])
        self.num_aus = int(self.meta["model"]["num_aus"])
        self._check_graph(path)

    def run(self, images: Tensor, token_mask: Tensor) -> tuple[np.ndarray, float]:
        """Normalised images (B, 3, S, S) and token mask (B, L) bool -> (probs (B, N) float32, head seconds = 0)."""
        feed = {INPUTS[0]: images.detach().float().cpu().contiguous().numpy(),
                INPUTS[1]: token_mask.detach().cpu().numpy().astype(bool)}
        return self.session.run([OUTPUT], feed)[0], 0.0

    def _check_graph(self, path: Path) -> None:
        """The graph's inputs and output must be the ones ``export_onnx`` writes, at the sizes the meta gives."""
        shapes = {i.name: i.shape for i in self.session.get_inputs()}
        num_patches = (self.size // self.patch) ** 2
        expected = {INPUTS[0]: [3, self.size, self.size], INPUTS[1]: [num_patches]}
        for name, tail in expected.items():
            if name not in shapes or list(shapes[name][1:]) != tail:
                raise ValueError(f"{path}: input {name!r} should be (batch, {', '.join(map(str, tail))}) for the "
                                 f"meta's {self.size}-px, patch-{self.patch} encoder; the graph has {shapes}")
        if [o.name for o in self.session.get_outputs()] != [OUTPUT]:
            raise ValueError(f"{path}: the graph should have the one output {OUTPUT!r}")


def _check_options(path: Path, device: str, precision: str) -> None:
    """What the ONNX runtime cannot do, said before a session is built."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        raise ValueError(f"{path}: a student bundle, not an ONNX model; export it first: "
                         f"occau export onnx {path} {path.with_suffix('.onnx')}")
    if resolve_device("cpu" if device == "auto" else device).type != "cpu":
        raise ValueError(f"--runtime onnx runs on the CPU only, got device {device!r}")
    if precision != "fp32":
        raise ValueError(f"--runtime onnx runs fp32 only, got precision {precision!r}")


def _read_meta(session: Any, path: Path) -> dict[str, Any]:
    """The student bundle's ``meta``, which ``export_onnx`` put into the model's metadata_props."""
    props = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in props:
        raise ValueError(f"{path}: no '{METADATA_KEY}' metadata; export the student with `occau export onnx`")
    meta = json.loads(props[METADATA_KEY])
    if meta.get("kind") != "student" or "encoder" not in meta or "model" not in meta:
        raise ValueError(f"{path}: its '{METADATA_KEY}' metadata does not describe a student bundle")
    return meta


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else err.__class__.__name__

