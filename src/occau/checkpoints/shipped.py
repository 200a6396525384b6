"""Weights that ship inside the package: the SynthFACS MAE every SynthFACS benchmark starts from, and the occlusion
estimator behind ``occau detect --occlusion learnt`` and the benchmark's unknown-occlusion axis.

The paper mines the latent space of a *pretrained* MAE. On SynthFACS that MAE is pretrained once, on 2400 procedural
identities that no benchmark subject can be (``mae-pool`` preset), and shipped, so a benchmark run spends its CPU
time on the study rather than on pretraining. ``occau bench synth --pretrain-mae`` redoes the pretraining instead,
and docs/pretraining.md gives the command that made the shipped file. Its metadata carry the recipe, the training
data, the licence and the AU-probe curve.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

SYNTHFACS_MAE = "synthfacs_mae_vit_tiny_patch8_64.safetensors"
OCCLUSION_ESTIMATOR = "occlusion_unet_w16_synthfacs_photos.safetensors"


def shipped_weights(name: str = SYNTHFACS_MAE) -> Path:
    """Path of a packaged weights file; a clear error if this installation lacks it."""
    path = Path(str(resources.files("occau") / "weights" / name))
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: packaged weights missing (a source checkout without src/occau/weights/{name}?); reinstall "
            "occau (docs/pretraining.md and docs/detect.md give the commands that made each shipped file)")
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
    meta = without_machine_paths(meta)
    out = save_checkpoint(dst, state, {**meta, "license": SHIPPED_LICENSE, "shipped_from": Path(src).name})
    if out.stat().st_size > MAX_SHIPPED_BYTES:
        out.unlink()
        raise ValueError(f"{src}: {out.stat().st_size / 2**20:.1f} MB exceeds the 32 MB limit for shipped weights")
    return out


ESTIMATOR_LICENSE = ("MIT (weights trained by occau on SynthFACS, procedural faces it generates itself, and on "
                     "public-domain photographs shipped by scikit-image / matplotlib: occau.data.photos)")
MAX_ESTIMATOR_BYTES = 8 * 2**20


def ship_occlusion_estimator(src: str | Path, measured: str | Path, dst: str | Path | None = None) -> Path:
    """Copy a trained occlusion estimator into the package with what was measured of it.

    It must be an occau occlusion estimator trained on SynthFACS and public photographs only, and must never have
    seen the kinds it is judged on (held-out and protocol kinds); ``measured`` is the JSON that
    ``benchmarks/detect_occlusion.py --estimate learnt --checkpoint SRC --out FILE.md`` wrote beside FILE.md, so the
    shipped file carries its own token precision / recall, the faces and the command that measured them.
    """
    import json

    from occau.checkpoints.io import load_checkpoint, save_checkpoint
    from occau.data.photos import PUBLIC_PHOTOS
    from occau.occlusion.occluder_kinds import HELD_OUT_KINDS, PROTOCOL_KINDS

    state, meta = load_checkpoint(src)
    problems = []
    if meta.get("kind") != "occlusion":
        problems.append(f"kind is {meta.get('kind')!r}, not 'occlusion'")
    recipe = meta.get("training", {}).get("loss", {})
    if meta.get("data", {}).get("source") != "synthfacs":
        problems.append(f"trained on {meta.get('data', {}).get('source')!r} faces, not SynthFACS")
    if set(recipe.get("photos", [])) - set(PUBLIC_PHOTOS):
        problems.append(f"photos {recipe.get('photos')} are not all public-domain photos of occau.data.photos")
    seen = set(recipe.get("kinds", [])) & (set(HELD_OUT_KINDS) | set(PROTOCOL_KINDS))
    if seen:
        problems.append(f"trained on kinds it is judged on: {sorted(seen)}")
    report = json.loads(Path(measured).read_text())
    if report.get("checkpoint_sha256") != _sha256(src):
        problems.append(f"{measured} measured another file (run benchmarks/detect_occlusion.py on {src})")
    if problems:
        raise ValueError(f"{src}: not fit to ship: " + "; ".join(problems))
    dst = Path(dst) if dst is not None else Path(str(resources.files("occau") / "weights" / OCCLUSION_ESTIMATOR))
    measured_meta = {"command": report["command"], "ms_per_face": report["ms_per_face"], "tables": report["tables"]}
    out = save_checkpoint(dst, state, {**without_machine_paths(meta), "license": ESTIMATOR_LICENSE,
                                       "shipped_from": Path(src).name, "measured": measured_meta})
    if out.stat().st_size > MAX_ESTIMATOR_BYTES:
        out.unlink()
        raise ValueError(f"{src}: {out.stat().st_size / 2**20:.1f} MB exceeds the 8 MB limit for the estimator")
    return out


MACHINE_PATH_KEYS = ("cache_dir", "root")  # where files lay on the training machine: not part of any recipe


def without_machine_paths(meta: Any) -> Any:
    """``meta`` with every absolute path under :data:`MACHINE_PATH_KEYS` set to None: shipped files must not carry
    the folders of the machine that trained them (a relative path, e.g. the presets' ``data``, is kept)."""
    if isinstance(meta, dict):
        return {k: None if k in MACHINE_PATH_KEYS and isinstance(v, str) and Path(v).is_absolute()
                else without_machine_paths(v) for k, v in meta.items()}
    if isinstance(meta, list):
        return [without_machine_paths(v) for v in meta]
    return meta


def _sha256(path: str | Path) -> str:
    import hashlib

    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
