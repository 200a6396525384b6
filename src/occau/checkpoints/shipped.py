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


SHIPPED_LICENSE = "MIT (weights trained by occau on SynthFACS, procedural faces it generates itself)"
MAX_SHIPPED_BYTES = 32 * 2**20


def ship_mae(src: str | Path, dst: str | Path | None = None) -> Path:
    """Copy a pretrained SynthFACS MAE into the package, checking that it is fit to ship.

    It must be an occau MAE checkpoint with its decoder (the reconstruct baseline needs it), trained on the
    ``mae-pool`` preset (identities outside every benchmark), with its AU-probe curve; the licence is set to the
    project's, since the training faces are occau's own procedural output.
    """
    from occau.checkpoints.io import load_checkpoint, save_checkpoint

    state, meta = load_checkpoint(src)
    problems = []
    if meta.get("kind") != "mae":
        problems.append(f"kind is {meta.get('kind')!r}, not 'mae'")
    if not any(k.startswith("decoder_") for k in state):
        problems.append("no decoder weights (the reconstruct baseline needs them)")
    data = meta.get("data", {})
    if (data.get("source"), data.get("preset")) != ("synthfacs", "mae-pool"):
        problems.append(f"trained on {data.get('source')}/{data.get('preset')}, not synthfacs/mae-pool")
    if not meta.get("probe", {}).get("epochs"):
        problems.append("no AU-probe curve in the metadata")
    if problems:
        raise ValueError(f"{src}: not fit to ship: " + "; ".join(problems))
    dst = Path(dst) if dst is not None else Path(str(resources.files("occau") / "weights" / SYNTHFACS_MAE))
    out = save_checkpoint(dst, state, {**meta, "license": SHIPPED_LICENSE, "shipped_from": Path(src).name})
    if out.stat().st_size > MAX_SHIPPED_BYTES:
        out.unlink()
        raise ValueError(f"{src}: {out.stat().st_size / 2**20:.1f} MB exceeds the 32 MB limit for shipped weights")
    return out
