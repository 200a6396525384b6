"""Importers for MAE checkpoints: one per foreign format, each saying exactly what it drops.

Formats (sniffed by container and keys, UPSTREAM.md §1.3):
- official ``mae_visualize_vit_*.pth``: ``{'model': sd}`` with all encoder and decoder keys (254 for ViT-B);
- official ``mae_pretrain_vit_*.pth``: ``{'model': sd}`` with encoder keys only (150 for ViT-B), perhaps plus a
  ``mask_token`` that is dropped; the output of MAE's own training scripts has the same container plus
  ``optimizer``/``epoch``/``args``;
- timm ``vit_*_patch*_224.mae`` (``.safetensors`` or ``.pth``): a flat encoder state dict, same names as official;
- occau's own self-describing safetensors (``kind == "mae"``), which carries its config.

Encoder-only checkpoints give ``decoder=False`` models, so nothing is ever left missing: every load is strict.
Loading at another image size regenerates the fixed sin-cos position tables (or resamples learned ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import safe_open

from occau.checkpoints.io import (
    METADATA_KEY,
    CheckpointError,
    describe_mismatch,
    load_checkpoint,
    load_exact,
    load_foreign,
    save_checkpoint,
    unwrap_state_dict,
)
from occau.config import from_dict
from occau.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from occau.models.mae import MAE_CONFIGS, MAEConfig, MaskedAutoencoderViT
from occau.models.pos_embed import resize_pos_embed

OFFICIAL_LICENSE = "CC BY-NC 4.0 (official MAE weights)"
UNKNOWN_LICENSE = "unknown"
DECODER_PREFIXES = ("decoder_", "mask_token")
TRAINING_STATE_KEYS = ("optimizer", "epoch", "scaler")  # written by MAE's util/misc.save_model, not in releases


@dataclass
class ImportedMAE:
    """A foreign or occau MAE checkpoint, reduced to official key names."""

    state_dict: dict[str, torch.Tensor]
    has_decoder: bool
    format: str  # "official-visualize" | "official-pretrain" | "timm" | "occau"
    dropped: tuple[str, ...]  # keys present in the file and deliberately not loaded
    license: str
    config: MAEConfig | None = None  # only occau checkpoints describe themselves
    arch: str | None = None


# ---------------------------------------------------------------- one importer per format
def import_official(obj: Mapping, path: str | Path) -> ImportedMAE:
    """``{'model': sd}`` from facebookresearch/mae: visualize (encoder + decoder) or pretrain (encoder only)."""
    sd = _strip_prefix(unwrap_state_dict(obj, path, containers=("model",)), "module.")
    # Released files hold only 'model'; a training-script output also holds optimizer state: its licence is the
    # trainer's, not Meta's.
    license = UNKNOWN_LICENSE if any(k in obj for k in TRAINING_STATE_KEYS) else OFFICIAL_LICENSE
    if any(k.startswith("decoder_") for k in sd):
        return ImportedMAE(sd, has_decoder=True, format="official-visualize", dropped=(), license=license)
    dropped = tuple(k for k in sd if k == "mask_token")  # unused without a decoder (UPSTREAM.md §1.3, [U])
    sd = {k: v for k, v in sd.items() if k not in dropped}
    return ImportedMAE(sd, has_decoder=False, format="official-pretrain", dropped=dropped, license=license)


def import_timm(sd: Mapping[str, torch.Tensor], path: str | Path) -> ImportedMAE:
    """Flat timm ``VisionTransformer`` encoder state dict (``vit_*_224.mae``: ``num_classes=0``, token pooling).

    ``fc_norm``/``head`` are Identity there; empty tensors under those names are dropped, real ones mean a
    fine-tuned classifier whose pooling differs from MAE's, which is refused.
    """
    sd = _strip_prefix(dict(sd), "module.")
    head_keys = [k for k in sd if k.startswith(("fc_norm.", "head."))]
    trained = [k for k in head_keys if sd[k].numel() > 0]
    if trained:
        raise CheckpointError(
            f"{path}: has a classifier head / fc_norm ({', '.join(trained)}): a fine-tuned timm ViT, not the MAE "
            "encoder (vit_*_224.mae has num_classes=0 and no fc_norm)"
        )
    if any(k.startswith(DECODER_PREFIXES) for k in sd):
        return ImportedMAE(sd, has_decoder=True, format="official-visualize", dropped=(), license=UNKNOWN_LICENSE)
    sd = {k: v for k, v in sd.items() if k not in head_keys}
    # timm's .mae weights are the official release re-hosted (timm default_cfgs: cc-by-nc-4.0).
    return ImportedMAE(sd, has_decoder=False, format="timm", dropped=tuple(head_keys), license=OFFICIAL_LICENSE)


def import_occau(path: str | Path) -> ImportedMAE:
    """occau's own checkpoint: weights plus the config they were written with."""
    sd, meta = load_checkpoint(path)
    if meta.get("kind") != "mae":
        raise CheckpointError(f"{path}: an occau checkpoint of kind {meta.get('kind')!r}, not 'mae'")
    config = from_dict(MAEConfig, meta["model"], "model.")
    return ImportedMAE(
        sd, has_decoder=bool(meta["has_decoder"]), format="occau", dropped=(), license=meta["license"],
        config=config, arch=meta.get("arch"),
    )  # fmt: skip


def read_mae(path: str | Path) -> ImportedMAE:
    """Sniff the format of ``path`` and import it."""
    path = Path(path)
    if path.suffix == ".safetensors" and _is_occau_checkpoint(path):
        return import_occau(path)
    obj = load_foreign(path)
    if isinstance(obj, Mapping) and isinstance(obj.get("model"), Mapping):
        return import_official(obj, path)
    return import_timm(unwrap_state_dict(obj, path, containers=("state_dict",)), path)


# ---------------------------------------------------------------- architectures
def resolve_arch(arch: str | MAEConfig) -> tuple[str, MAEConfig]:
    """Preset name (with or without ``mae_``, or timm's ``vit_base_patch16_224.mae``) or config -> (name, config)."""
    if isinstance(arch, MAEConfig):
        return next((n for n, c in MAE_CONFIGS.items() if c == arch), "custom"), arch
    base = arch.split(".")[0]
    for name in (base, f"mae_{base}", f"mae_{base.removesuffix('_224')}"):
        if name in MAE_CONFIGS:
            return name, MAE_CONFIGS[name]
    raise ValueError(f"unknown MAE architecture {arch!r}; known: {', '.join(MAE_CONFIGS)}")


def encoder_geometry(sd: Mapping[str, torch.Tensor]) -> dict[str, int] | None:
    """Width, depth, patch size and token count of the encoder in ``sd`` (None if its keys are not MAE's)."""
    if not {"cls_token", "pos_embed", "patch_embed.proj.weight"} <= sd.keys():
        return None
    return {
        "embed_dim": sd["cls_token"].shape[-1],
        "depth": len({k.split(".")[1] for k in sd if k.startswith("blocks.")}),
        "patch_size": sd["patch_embed.proj.weight"].shape[-1],
        "num_patches": sd["pos_embed"].shape[1] - 1,
    }


def infer_arch(sd: Mapping[str, torch.Tensor], path: str | Path) -> tuple[str, MAEConfig]:
    """The one preset whose encoder width, depth, patch size and token count fit the state dict."""
    geometry = encoder_geometry(sd)
    if geometry is None:
        raise CheckpointError(f"{path}: no MAE encoder keys (cls_token, pos_embed, patch_embed); cannot infer arch")
    found = [(n, c) for n, c in MAE_CONFIGS.items() if _geometry(c) == geometry]
    if len(found) != 1:
        raise CheckpointError(
            f"{path}: encoder {geometry} matches {[n for n, _ in found] or 'no preset'}; pass arch= explicitly"
        )
    return found[0]


def _geometry(config: MAEConfig) -> dict[str, int]:
    return {k: getattr(config, k) for k in ("embed_dim", "depth", "patch_size", "num_patches")}


def _check_arch(sd: Mapping[str, torch.Tensor], name: str, config: MAEConfig, path: str | Path) -> None:
    """One clear line for the common mistake (a ViT-L file for a ViT-B arch) before load_exact lists every key."""
    found = encoder_geometry(sd)
    wanted = {k: v for k, v in _geometry(config).items() if k != "num_patches"}  # the grid can be regridded
    if found is not None and {k: found[k] for k in wanted} != wanted:
        raise CheckpointError(f"{path}: holds an MAE encoder with {found}, but arch {name} has {wanted}")


def _target(imported: ImportedMAE, arch: str | MAEConfig | None, path: str | Path) -> tuple[str, MAEConfig]:
    if arch is None:
        if imported.config is not None:
            return imported.arch or resolve_arch(imported.config)[0], imported.config
        return infer_arch(imported.state_dict, path)
    name, config = resolve_arch(arch)
    stored = imported.config
    if stored is not None and _without_size(config) != _without_size(stored):
        raise CheckpointError(f"{path}: holds MAE {stored}, which is not the requested {name} {config}")
    return name, config


# ---------------------------------------------------------------- public API
def load_mae(path: str | Path, arch: str | MAEConfig | None = None) -> MaskedAutoencoderViT:
    """Build and strictly load an MAE from any supported checkpoint (encoder-only files give ``decoder=False``).

    ``arch`` may be omitted for occau checkpoints (they carry their config) and for files that fit one preset.
    An ``arch`` at another image size (same patch size) loads the weights with the position tables regridded.
    """
    return _load(path, arch)[0]


def convert_mae(src: str | Path, dst: str | Path, arch: str | MAEConfig | None = "vit_base_patch16") -> Path:
    """Import ``src`` (checked by a strict load into ``arch``) and write it as a self-describing occau checkpoint."""
    model, imported, name = _load(src, arch)
    meta = mae_meta(model, name, imported.license, source=Path(src).name, source_format=imported.format,
                    dropped=list(imported.dropped))
    return save_checkpoint(dst, model.state_dict(), meta)


def init_mae_weights(model: MaskedAutoencoderViT, path: str | Path) -> list[str]:
    """Load ``path`` (any supported MAE format) into ``model`` to continue pretraining from it; returns the keys
    left at their fresh initialisation.

    The official ``mae_pretrain_vit_*.pth`` holds the encoder only, so the decoder (and ``mask_token``) start fresh,
    as they must when pretraining continues on faces. Anything else that does not fit (an unexpected key, a missing
    encoder key, a shape that differs) is an error listing every problem: a wrong file must never train silently
    from scratch.
    """
    imported = read_mae(path)
    _check_arch(imported.state_dict, "the model being trained", model.config, path)
    state = _regrid_pos_embeds(imported.state_dict, model)
    fresh = [k for k in model.state_dict() if k not in state]
    wrong = [p for p in describe_mismatch(model, state)
             if not (p.startswith("missing: ") and p.split()[1].startswith(DECODER_PREFIXES))]  # fmt: skip
    if wrong:
        listing = "\n  ".join(wrong[:50])
        raise CheckpointError(f"{path}: cannot continue MAE pretraining from it ({len(wrong)} problems):\n  {listing}")
    result = model.load_state_dict(state, strict=False)
    assert sorted(result.missing_keys) == sorted(fresh) and not result.unexpected_keys, result
    return fresh


def mae_meta(model: MaskedAutoencoderViT, arch: str, license: str, **extra) -> dict:
    """The self-description stored with an MAE checkpoint (imported or trained by occau)."""
    c = model.config
    return {
        "kind": "mae",
        "model": asdict(c),
        "arch": arch,
        "has_decoder": model.has_decoder,
        "input_size": [c.in_chans, c.img_size, c.img_size],
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "license": license,
        **extra,
    }


def _load(path: str | Path, arch: str | MAEConfig | None) -> tuple[MaskedAutoencoderViT, ImportedMAE, str]:
    imported = read_mae(path)
    name, config = _target(imported, arch, path)
    _check_arch(imported.state_dict, name, config, path)
    with torch.device("meta"):  # every tensor is overwritten by the strict load: skip the random init
        model = MaskedAutoencoderViT(config, decoder=imported.has_decoder)
    model = model.to_empty(device="cpu")
    load_exact(model, _regrid_pos_embeds(imported.state_dict, model), path)
    return model, imported, name


def _without_size(config: MAEConfig) -> dict:
    return {k: v for k, v in asdict(config).items() if k != "img_size"}


def _regrid_pos_embeds(sd: dict[str, torch.Tensor], model: MaskedAutoencoderViT) -> dict[str, torch.Tensor]:
    """Fit stored (1, 1+h*w, D) position tables to the model's grid; anything else is left for load_exact."""
    own = model.state_dict()
    new_grid = model.patch_embed.grid_size
    out = dict(sd)
    for key in ("pos_embed", "decoder_pos_embed"):
        if key not in sd or key not in own or sd[key].shape == own[key].shape:
            continue
        table = sd[key]
        side = round((table.shape[1] - 1) ** 0.5)
        if table.ndim == 3 and side * side == table.shape[1] - 1 and table.shape[2] == own[key].shape[2]:
            out[key] = resize_pos_embed(table, (side, side), new_grid)
    return out


def _strip_prefix(sd: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Remove a prefix carried by every key (``module.`` from DistributedDataParallel)."""
    if sd and all(k.startswith(prefix) for k in sd):
        return {k[len(prefix) :]: v for k, v in sd.items()}
    return sd


def _is_occau_checkpoint(path: Path) -> bool:
    """Only the header is read: does the safetensors metadata carry occau's description?"""
    try:
        with safe_open(str(path), framework="pt") as f:
            return METADATA_KEY in (f.metadata() or {})
    except Exception as err:
        raise CheckpointError(f"{path}: not a readable safetensors file: {err}") from err
