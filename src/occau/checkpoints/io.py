"""Reading and writing weights safely.

occau's own checkpoints are a single ``.safetensors`` file whose metadata carries a JSON description (architecture,
AU list, input size, normalisation, training data and folds, licence of the weights), so a checkpoint describes
itself. Foreign ``.pth`` files are read with ``torch.load(weights_only=True)``: no pickled code ever runs.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

METADATA_KEY = "occau"
REQUIRED_META = ("kind", "model", "input_size", "normalization", "license")


class CheckpointError(ValueError):
    """A checkpoint cannot be read, or does not fit the architecture it is loaded into."""


def load_foreign(path: str | Path) -> Any:
    """Load a foreign checkpoint (``.pth``/``.pt``/``.bin`` or ``.safetensors``) without running pickled code.

    ``argparse.Namespace`` is allowed because MAE's training scripts store their arguments in it; it only
    restores attributes.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)[0]
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors come in many types; all mean "not a safe weights file"
        raise CheckpointError(
            f"{path}: cannot be loaded safely with torch.load(weights_only=True): {err.__class__.__name__}: "
            f"{str(err).splitlines()[0] if str(err) else ''}"
        ) from err


def unwrap_state_dict(obj: Any, path: str | Path, containers: Iterable[str] = ("model", "state_dict")) -> dict:
    """Return the tensor dict inside the usual containers (``{'model': ...}``, ``{'state_dict': ...}``)."""
    if isinstance(obj, Mapping):
        for key in containers:
            if key in obj and isinstance(obj[key], Mapping):
                return unwrap_state_dict(obj[key], path, containers)
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return dict(obj)
    raise CheckpointError(f"{path}: no state dict of tensors found (looked inside {list(containers)})")


def describe_mismatch(model: nn.Module, state_dict: Mapping[str, torch.Tensor]) -> list[str]:
    """Every way ``state_dict`` differs from ``model``: missing keys, unexpected keys, shape mismatches."""
    own = model.state_dict()
    problems = [f"missing: {k} {tuple(v.shape)}" for k, v in own.items() if k not in state_dict]
    problems += [f"unexpected: {k} {tuple(v.shape)}" for k, v in state_dict.items() if k not in own]
    problems += [
        f"shape mismatch: {k} checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    ]
    return problems


def load_exact(model: nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | Path) -> nn.Module:
    """Load strictly, raising one ``CheckpointError`` that lists every mismatch (not just the first)."""
    problems = describe_mismatch(model, state_dict)
    if problems:
        listing = "\n  ".join(problems[:50]) + (f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else "")
        raise CheckpointError(f"{path}: does not fit {model.__class__.__name__} ({len(problems)} problems):\n  {listing}")
    model.load_state_dict(state_dict, strict=True)
    return model


def save_checkpoint(path: str | Path, state_dict: Mapping[str, torch.Tensor], meta: Mapping[str, Any]) -> Path:
    """Write weights plus their self-description to one safetensors file."""
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"checkpoint metadata lacks {missing}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={METADATA_KEY: json.dumps(dict(meta), sort_keys=True)})
    tmp.replace(path)  # atomic: an interrupted save never leaves a truncated checkpoint behind
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read an occau checkpoint: ``(state_dict, meta)``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    tensors, metadata = _read_safetensors(path)
    if METADATA_KEY not in metadata:
        raise CheckpointError(f"{path}: not an occau checkpoint (no '{METADATA_KEY}' metadata); convert it first")
    return tensors, json.loads(metadata[METADATA_KEY])


def read_meta(path: str | Path) -> dict[str, Any] | None:
    """The self-description of an occau checkpoint without reading its tensors; None for any other file."""
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception:  # not a safetensors file at all (e.g. a foreign .pth)
        return None
    return json.loads(metadata[METADATA_KEY]) if METADATA_KEY in metadata else None


def _read_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable safetensors file: {err}") from err
