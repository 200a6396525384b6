"""Weights that ship inside the package: the SynthFACS MAE every SynthFACS benchmark starts from.

The paper mines the latent space of a *pretrained* MAE. On SynthFACS that MAE is pretrained once, on 2400 procedural
identities that no benchmark subject can be (``mae-pool`` preset), and shipped, so a benchmark run spends its CPU
time on the study rather than on pretraining. ``occau bench synth --pretrain-mae`` redoes the pretraining instead,
and docs/pretraining.md gives the command that made the shipped file. Its metadata carry the recipe, the training
data, the licence and the AU-probe curve.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SYNTHFACS_MAE = "synthfacs_mae_vit_tiny_patch8_64.safetensors"


def shipped_weights(name: str = SYNTHFACS_MAE) -> Path:
    """Path of a packaged weights file; a clear error if this installation lacks it."""
    path = Path(str(resources.files("occau") / "weights" / name))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: packaged weights missing (a source checkout without src/occau/weights/{name}?); reinstall "
            f"occau, or pretrain the MAE with `occau bench synth --pretrain-mae ...`")
    return path
