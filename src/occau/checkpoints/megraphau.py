"""Importer for official ME-GraphAU checkpoints (CVI-SZU/ME-GraphAU) and for the ImageNet files of its backbones.

Official training files are ``torch.save({'epoch', 'state_dict', 'optimizer'})``, with ``module.`` prefixes when the
net was wrapped in DataParallel (always, on a GPU machine). Their keys equal occau's except for Swin backbones, which
use Microsoft's original names: downsampling at the *end* of stages 0..2 (timm: start of 1..3) and stored
``relative_position_index`` / ``attn_mask`` buffers (timm recomputes them). The buffers are dropped only after
checking they equal the ones the timm model computes, so a different window size or resolution cannot slip through.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from ..aus import BP4D_AUS, DISFA_AUS
from ..config import from_dict
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD
from ..models.megraphau import BACKBONES, MEGraphAU, MEGraphAUConfig
from .io import CheckpointError, load_checkpoint, load_exact, load_foreign, save_checkpoint, unwrap_state_dict

ARCH = "megraphau"
LICENSE = "unknown (ME-GraphAU release)"
FOLD_NOTE = (
    "ME-GraphAU's train_stage2.py trains and tests on fold f but saves ..._fold{f+1}.pth (stage 1 saves fold{f}); "
    "fold1 tests on part3 and fold3 on part1. Pair checkpoints with folds by their training command, not file name."
)
# What a stage-1 (ANFL) checkpoint holds that stage 2 (MEFL) has no place for: the FGG layer.
ANFL_ONLY_KEYS = frozenset(
    [f"head.gnn.{m}.{p}" for m in ("U", "V") for p in ("weight", "bias")]
    + [f"head.gnn.bnv.{p}" for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
)
MEFL_ONLY_PREFIXES = ("head.edge_extractor.", "head.gnn.", "head.edge_fc.")
SWIN_BUFFER_SUFFIXES = (".attn.relative_position_index", ".attn_mask")
DEFAULT_NEIGHBOR_NUM = {12: 4, 8: 3}  # config/BP4D.yaml and config/DISFA.yaml
KNOWN_AUS = {12: BP4D_AUS, 8: DISFA_AUS}


def strip_module_prefix(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Remove DataParallel's leading ``module.`` from every key that has it."""
    return {k.removeprefix("module."): v for k, v in state_dict.items()}


def swin_microsoft_to_timm(state_dict: Mapping[str, Tensor], prefix: str = "") -> tuple[dict, dict]:
    """Microsoft Swin names -> timm names under ``prefix``: ``(renamed, dropped_buffers)``.

    ``layers.i.downsample`` becomes ``layers.{i+1}.downsample``; ``relative_position_index`` / ``attn_mask`` buffers
    are returned separately for checking. A state_dict already in timm layout passes through unchanged.
    """
    microsoft = f"{prefix}layers.0.downsample.reduction.weight" in state_dict
    pattern = re.compile(rf"^{re.escape(prefix)}layers\.(\d+)\.downsample\.")
    renamed, dropped = {}, {}
    for k, v in state_dict.items():
        if k.startswith(prefix) and k.endswith(SWIN_BUFFER_SUFFIXES):
            dropped[k] = v
            continue
        if microsoft:
            k = pattern.sub(lambda m: f"{prefix}layers.{int(m.group(1)) + 1}.downsample.", k)
        renamed[k] = v
    return renamed, dropped


def _check_swin_buffers(dropped: Mapping[str, Tensor], model: nn.Module, path: str | Path) -> None:
    """Every dropped buffer must equal the one the timm model recomputes (same window size and resolution)."""
    own = {k: v for k, v in model.named_buffers()}
    bad = [
        k
        for k, v in dropped.items()
        if k not in own or own[k].shape != v.shape or not torch.equal(own[k], v.to(own[k]))
    ]
    if bad:
        raise CheckpointError(
            f"{path}: Swin buffers that differ from the model's (other window size or input size?): {sorted(bad)[:10]}"
            + (f" ... and {len(bad) - 10} more" if len(bad) > 10 else "")
        )


def to_occau_names(state_dict: Mapping[str, Tensor], model: MEGraphAU, path: str | Path) -> dict[str, Tensor]:
    """Official MEFARG keys (any prefix/Swin layout) -> the keys of ``model``; the checkpoint filter of this format."""
    sd = strip_module_prefix(state_dict)
    if BACKBONES[model.config.backbone].family == "swin":
        sd, dropped = swin_microsoft_to_timm(sd, prefix="backbone.")
        _check_swin_buffers(dropped, model, path)
    return sd


def read_state_dict(path: str | Path) -> tuple[dict[str, Tensor], dict | None]:
    """``(state_dict, occau meta or None)`` of an occau checkpoint or an official ``.pth``."""
    path = Path(path)
    if path.suffix == ".safetensors":
        try:
            return load_checkpoint(path)
        except CheckpointError:
            pass  # a bare safetensors state dict: treat it as foreign
    return unwrap_state_dict(load_foreign(path), path, containers=("state_dict", "model")), None


def config_from_meta(meta: Mapping, path: str | Path) -> MEGraphAUConfig:
    if meta.get("arch") != ARCH or not isinstance(meta.get("model"), Mapping):
        raise CheckpointError(
            f"{path}: not a ME-GraphAU checkpoint (kind={meta.get('kind')!r}, arch={meta.get('arch')!r})"
        )
    return from_dict(MEGraphAUConfig, dict(meta["model"]), "model.")


def load_megraphau(path: str | Path, config: MEGraphAUConfig | None = None) -> MEGraphAU:
    """A ME-GraphAU model from an occau checkpoint (config read from it) or an official ``.pth`` (config needed)."""
    state_dict, meta = read_state_dict(path)
    if config is None:
        if meta is None:
            raise CheckpointError(
                f"{path}: an official ME-GraphAU file does not say its architecture; pass a MEGraphAUConfig "
                "(e.g. MEGRAPHAU_CONFIGS['resnet50_bp4d'], with stage=1 for a stage-1 file)"
            )
        config = config_from_meta(meta, path)
    model = empty_megraphau(config)
    load_exact(model, to_occau_names(state_dict, model, path), path)
    return model.eval()


def empty_megraphau(config: MEGraphAUConfig) -> MEGraphAU:
    """A model with uninitialised weights (fast: no random init) and correct derived buffers, for a strict load.

    Built on the meta device; the only non-persistent buffers (timm Swin's relative position index and attention
    masks) are then recomputed by their modules.
    """
    with torch.device("meta"):
        model = MEGraphAU(config)
    model = model.to_empty(device="cpu")
    for name, module in model.named_modules():
        if hasattr(module, "init_non_persistent_buffers"):
            module.init_non_persistent_buffers()
        elif module._non_persistent_buffers_set:  # a derived buffer nobody would recompute: refuse garbage
            raise RuntimeError(f"{name}: non-persistent buffers {module._non_persistent_buffers_set} cannot be rebuilt")
    return model


def megraphau_meta(config: MEGraphAUConfig, source: str = "") -> dict:
    """The self-description stored with a ME-GraphAU checkpoint."""
    meta = {
        "kind": "teacher",
        "arch": ARCH,
        "model": config.to_dict(),
        "input_size": [3, config.img_size, config.img_size],
        "normalization": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
        "license": LICENSE,
        "note": FOLD_NOTE,
    }
    if config.num_aus in KNOWN_AUS:  # ME-GraphAU's only releases: BP4D (12 AUs) and DISFA (8 AUs), in this order
        meta["aus"] = list(KNOWN_AUS[config.num_aus])
    if source:
        meta["source"] = source
    return meta


def convert_megraphau(
    src: str | Path, dst: str | Path, backbone: str, num_aus: int, stage: int = 2, neighbor_num: int | None = None
) -> Path:
    """Official ME-GraphAU ``.pth`` -> occau checkpoint (safetensors + self-description), checked by a strict load."""
    if neighbor_num is None:
        neighbor_num = min(DEFAULT_NEIGHBOR_NUM.get(num_aus, 4), num_aus)
    config = MEGraphAUConfig(backbone=backbone, num_aus=num_aus, stage=stage, neighbor_num=neighbor_num)
    model = load_megraphau(src, config)
    return save_checkpoint(dst, model.state_dict(), megraphau_meta(config, source=Path(src).name))


def init_stage2_from_stage1(stage2_model: MEGraphAU, stage1_state_dict: Mapping[str, Tensor] | str | Path) -> list[str]:
    """Upstream's warm start: stage 2 takes backbone, global_linear, class_linears and sc from a stage-1 model.

    Upstream loads with ``strict=False``; here the ignored stage-1 keys must be exactly the FGG layer and the keys
    left at their stage-2 initialisation exactly GEM, gated GCN and edge_fc. Returns the ignored keys (sorted).
    """
    if stage2_model.config.stage != 2:
        raise ValueError("init_stage2_from_stage1 needs a stage-2 model")
    source = stage1_state_dict if isinstance(stage1_state_dict, (str, Path)) else "stage-1 state_dict"
    if isinstance(stage1_state_dict, (str, Path)):
        stage1_state_dict = read_state_dict(stage1_state_dict)[0]
    sd = to_occau_names(stage1_state_dict, stage2_model, source)
    own = stage2_model.state_dict()
    ignored = sorted(k for k in sd if k not in own)
    missing = sorted(k for k in own if k not in sd)
    expected_missing = sorted(k for k in own if k.startswith(MEFL_ONLY_PREFIXES))
    problems = [
        f"shape mismatch: {k} checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in sd.items()
        if k in own and v.shape != own[k].shape
    ]
    problems += [f"unexpected: {k}" for k in sorted(set(ignored) - ANFL_ONLY_KEYS)]
    problems += [f"stage-1 key absent: {k}" for k in sorted(ANFL_ONLY_KEYS - set(ignored))]
    problems += [f"missing: {k}" for k in sorted(set(missing) - set(expected_missing))]
    problems += [
        f"stage-2-only key present in stage-1 checkpoint: {k}" for k in sorted(set(expected_missing) - set(missing))
    ]
    if problems:
        raise CheckpointError(
            f"{source}: not a stage-1 checkpoint of this model ({len(problems)} problems):\n  "
            + "\n  ".join(problems[:50])
        )
    # strict load: the stage-2-only entries are the model's own current values
    stage2_model.load_state_dict({**own, **{k: v for k, v in sd.items() if k in own}}, strict=True)
    return ignored


def load_backbone_weights(model: MEGraphAU, path: str | Path) -> list[str]:
    """Initialise ``model.backbone`` from an ImageNet file; returns the dropped classifier keys (sorted).

    Accepts torchvision ``resnet*.pth`` (bare state dict), Microsoft ``swin_*_patch4_window7_224.pth`` (``['model']``,
    original names and buffers) and timm Swin state dicts. Only the classifier (``fc.*`` / ``head.*``) is dropped.
    """
    sd = strip_module_prefix(unwrap_state_dict(load_foreign(path), path, containers=("model", "state_dict")))
    family = BACKBONES[model.config.backbone].family
    classifier = "fc." if family == "resnet" else "head."
    dropped = sorted(k for k in sd if k.startswith(classifier))
    sd = {k: v for k, v in sd.items() if not k.startswith(classifier)}
    if family == "swin":
        sd, buffers = swin_microsoft_to_timm(sd)
        _check_swin_buffers(buffers, model.backbone, path)
    load_exact(model.backbone, sd, path)
    return dropped
