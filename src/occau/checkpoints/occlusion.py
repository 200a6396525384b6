"""Occlusion estimators as self-describing files: the network, the recipe it learnt from, its measured quality."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from occau.checkpoints.io import CheckpointError, load_checkpoint, load_exact
from occau.config import from_dict
from occau.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from occau.models.occlusion_net import OcclusionNet, OcclusionNetConfig


def occlusion_meta(config: OcclusionNetConfig) -> dict[str, Any]:
    """What a loader needs to rebuild the estimator (the caller adds provenance, recipe and measurements)."""
    return {"kind": "occlusion", "model": asdict(config), "input_size": [3, config.input_size, config.input_size],
            "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)}}


def load_occlusion_net(path: str | Path) -> tuple[OcclusionNet, dict[str, Any]]:
    """``(estimator in eval mode, meta)``, loaded strictly from occau's safetensors."""
    state, meta = load_checkpoint(path)
    if meta.get("kind") != "occlusion":
        raise CheckpointError(f"{path}: a {meta.get('kind')!r} checkpoint, not an occlusion estimator")
    net = OcclusionNet(from_dict(OcclusionNetConfig, meta["model"]))
    load_exact(net, state, path)
    return net.eval(), meta
