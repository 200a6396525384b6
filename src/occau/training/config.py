"""Training configuration as data: one typed ``StageConfig`` per training run, loaded from YAML with overrides.

One ``StageConfig`` describes one training run completely (data, model, loss, optimisation, trainer), so a run is
reproduced from its YAML file alone and every checkpoint stores the config it was trained with. ``model`` and
``loss`` are the dataclasses of the stage's kind (:data:`STAGE_KINDS`), so a misspelt key fails when the file is
read, naming the key and the allowed ones; ``model: {arch: NAME, ...}`` starts from a named architecture preset.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from occau.config import apply_overrides, from_dict, read_yaml, to_dict
from occau.data.config import DataConfig
from occau.losses.distill import DISTILLATION_PRESETS, DistillationConfig
from occau.models.mae import MAE_CONFIGS, MAEConfig
from occau.models.megraphau.model import MEGRAPHAU_CONFIGS, MEGraphAUConfig
from occau.models.occlusion_net import OCCLUSION_NET_CONFIGS, OcclusionNetConfig
from occau.models.student import STUDENT_CONFIGS, StudentConfig
from occau.occlusion.covered_faces import CoverRecipe

ARCH_KEY = "arch"  # model: {arch: mae_vit_tiny_patch8_64, ...}: a named preset, then the keys given


@dataclass
class OptimConfig:
    lr: float = 1e-4
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)
    epochs: int = 20
    warmup_epochs: float = 0.0
    min_lr: float = 0.0
    # Student stage: how many of the MAE encoder's top blocks (and its final norm) are fine-tuned with the student,
    # still on the visible tokens only: 0 keeps the encoder frozen, its depth or more fine-tunes all of it (patch
    # embedding too). Layer-wise lr decay as MAE fine-tuning does (1.0 = none).
    finetune_blocks: int = 0
    layer_decay: float = 1.0


@dataclass
class TrainerConfig:
    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "auto"  # "auto": bf16-mixed on GPUs that support it, else 32-true
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1  # splits the global batch further, e.g. when a GPU cannot hold its share
    sync_batchnorm: bool = False  # BatchNorm over the global batch (as upstream's single process) instead of per GPU
    log_every_n_steps: int = 10
    progress_bar: bool = True
    max_steps: int = -1  # for smoke runs


@dataclass
class ProbeConfig:
    """The grid-linear AU probe that watches MAE pretraining (occau.training.probe); ``every_n_epochs`` 0 = off."""

    every_n_epochs: int = 0
    fit_split: str = "train"  # labelled faces the probe is fitted on (fold 1)
    score_split: str = "val"  # faces it is scored on; "test" only for the shipped MAE's own probe subjects
    stride: int = 1  # every n-th face of each split
    steps: int = 300
    seed: int = 0


@dataclass(frozen=True)
class MAELoss:
    mask_ratio: float = 0.75  # fraction of patch tokens hidden from the encoder while pretraining


@dataclass(frozen=True)
class TeacherLoss:
    edge_weight: float = 0.05  # lambda of ME-GraphAU stage 2's edge co-occurrence loss (README: 0.05 BP4D, 0.01 DISFA)


ENCODER_INITS = ("pretrained", "random")


@dataclass
class StudentLoss:
    """The students trained side by side and their objectives.

    ``variants`` maps a method name to a KD preset name (:data:`DISTILLATION_PRESETS`) or to DistillationConfig
    fields; ``kd`` holds fields every explicit variant shares (e.g. the feature distance), so presets state them once.
    """

    variants: dict[str, Any] = field(default_factory=lambda: {"student": "full"})
    kd: dict[str, Any] = field(default_factory=dict)
    init_from_teacher: bool = True  # the student's graph head starts from the teacher's
    encoder_init: str = "pretrained"  # "random": the no-pretraining control (same shape, no MAE pretraining)

    def __post_init__(self) -> None:
        if self.encoder_init not in ENCODER_INITS:
            raise ValueError(f"encoder_init must be one of {ENCODER_INITS}, got {self.encoder_init!r}")
        if not self.variants:
            raise ValueError("variants: at least one student is needed")
        self.distillation()  # a misspelt weight fails when the config is read

    def distillation(self) -> dict[str, DistillationConfig]:
        out = {}
        for name, spec in self.variants.items():
            if isinstance(spec, str):
                if spec not in DISTILLATION_PRESETS:
                    known = sorted(DISTILLATION_PRESETS)
                    raise ValueError(f"variants.{name}: unknown KD preset {spec!r}; known: {known}")
                out[name] = DISTILLATION_PRESETS[spec]
            else:
                out[name] = from_dict(DistillationConfig, {**self.kd, **dict(spec)}, f"loss.variants.{name}.")
        return out


@dataclass
class OcclusionLoss(CoverRecipe):
    """What the occlusion estimator learns from (the faces and occluders of :class:`CoverRecipe`) and how its
    per-pixel binary cross-entropy weighs covered pixels against bare ones."""

    pos_weight: float = 1.0


@dataclass(frozen=True)
class StageKind:
    """What a stage kind's config holds: its model and loss dataclasses, the checkpoints it may start from
    (``init.<role>``), and its named architecture presets."""

    model: type
    loss: type
    init_roles: tuple[str, ...]
    archs: Mapping[str, Any]


STAGE_KINDS: dict[str, StageKind] = {
    # continue pretraining from an MAE checkpoint (official, timm or occau)
    "mae": StageKind(MAEConfig, MAELoss, ("mae",), MAE_CONFIGS),
    # ImageNet backbone / stage-1 warm start / a whole trained teacher
    "teacher": StageKind(MEGraphAUConfig, TeacherLoss, ("backbone", "stage1", "weights"), MEGRAPHAU_CONFIGS),
    # the MAE whose latents the student mines, and the frozen teacher
    "student": StageKind(StudentConfig, StudentLoss, ("mae", "teacher"), STUDENT_CONFIGS),
    # the estimate of what covers a face (trained from scratch, or continued from an occau estimator)
    "occlusion": StageKind(OcclusionNetConfig, OcclusionLoss, ("weights",), OCCLUSION_NET_CONFIGS),
}


def model_config(kind: str, values: Any, where: str = "model.") -> Any:
    """The stage kind's model dataclass from a mapping (``arch`` names a preset that the other keys override)."""
    spec = STAGE_KINDS[kind]
    if isinstance(values, spec.model):
        return values
    values = dict(values or {})
    arch = values.pop(ARCH_KEY, None)
    if arch is not None:
        if arch not in spec.archs:
            raise ValueError(f"{where}{ARCH_KEY}: unknown {kind} architecture {arch!r}; known: {', '.join(spec.archs)}")
        values = {**asdict(spec.archs[arch]), **values}
    return from_dict(spec.model, values, where)


@dataclass
class StageConfig:
    """One training run of a stage kind (:data:`STAGE_KINDS`: "mae", "teacher", "student" or "occlusion")."""

    stage: str = "teacher"
    name: str = ""  # the method's name in results, e.g. "teacher", "teacher_occaug", "student"
    data: DataConfig = field(default_factory=DataConfig)
    model: Any = None  # the kind's model dataclass (a mapping in YAML)
    loss: Any = None  # the kind's loss dataclass (a mapping in YAML)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    init: dict[str, str] = field(default_factory=dict)  # checkpoints to start from, by role
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # MAE stage only
    seed: int = 0

    def __post_init__(self) -> None:
        if self.stage not in STAGE_KINDS:
            raise ValueError(f"stage must be one of {tuple(STAGE_KINDS)}, got {self.stage!r}")
        kind = STAGE_KINDS[self.stage]
        self.model = model_config(self.stage, self.model)
        self.loss = from_dict(kind.loss, self.loss or {}, "loss.")
        if self.probe.every_n_epochs and self.stage != "mae":
            raise ValueError(f"probe is for the mae stage, not {self.stage!r}")
        if self.probe.score_split == "test" and self.data.preset != "mae-pool":
            raise ValueError("probe.score_split 'test' would score on a fold's test subjects; it is allowed only for "
                             "the 'mae-pool' preset, whose labelled subjects are probe subjects outside every fold")
        unknown = sorted(set(self.init) - set(kind.init_roles))
        if unknown:
            raise ValueError(f"init: unknown key(s) {unknown} for stage {self.stage!r}; "
                             f"allowed: {list(kind.init_roles)}")
        if self.stage == "mae" and self.data.patch_size and self.data.patch_size != self.model.patch_size:
            raise ValueError(f"data.patch_size is {self.data.patch_size} but the MAE's model.patch_size is "
                             f"{self.model.patch_size}: the occlusion grid must be the MAE's token grid")


def packaged_configs() -> list[str]:
    """Names of the stage configs installed with occau, e.g. ``real/bp4d_student_vitb.yaml``,
    ``occlusion/synthfacs_photos.yaml``."""
    root = Path(__file__).resolve().parents[1] / "configs"
    found = (p for folder in ("real", "occlusion") for p in root.glob(f"{folder}/*.yaml"))
    return sorted(p.relative_to(root).as_posix() for p in found)


def resolve_config_path(path: str | Path) -> Path:
    """A YAML file, or the name of a packaged config (``real/NAME.yaml``, ``occlusion/NAME.yaml``), so commands in
    the docs need no path to the installed package."""
    path = Path(path)
    if path.is_file():
        return path
    packaged = Path(__file__).resolve().parents[1] / "configs" / path
    if path.as_posix() in packaged_configs():
        return packaged
    raise FileNotFoundError(f"{path}: config file not found, and not a packaged config "
                            f"({', '.join(packaged_configs())})")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> StageConfig:
    """Read a stage YAML (a file or a packaged name, or start from defaults) and apply ``a.b=value`` overrides
    (values parsed as YAML)."""
    values = read_yaml(resolve_config_path(path)) if path is not None else {}
    try:
        return from_dict(StageConfig, apply_overrides(values, overrides))
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path or 'config'}: {err}") from err


def save_config(config: StageConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


# Keys that say where files are or which hardware runs a stage, not what it trains: a run may resume with them changed.
WHERE_NOT_WHAT = ("init", "data.cache_dir", "data.root", "data.num_workers", "trainer.accelerator",
                  "trainer.devices", "trainer.num_nodes", "trainer.strategy", "trainer.log_every_n_steps",
                  "trainer.progress_bar")


class RecipeChangedError(ValueError):
    """A folder holds a stage trained with another recipe than the one asked for now."""


def recipe_changes(saved: StageConfig, new: StageConfig) -> list[str]:
    """``"key: old -> new"`` for every setting that differs between two stage configs, leaving out
    :data:`WHERE_NOT_WHAT`."""
    old_flat, new_flat = _flatten(to_dict(saved)), _flatten(to_dict(new))
    keys = [k for k in dict.fromkeys([*old_flat, *new_flat])
            if not any(k == w or k.startswith(w + ".") for w in WHERE_NOT_WHAT)]
    return [f"{k}: {old_flat.get(k, '(unset)')} -> {new_flat.get(k, '(unset)')}" for k in keys
            if old_flat.get(k) != new_flat.get(k)]


def check_same_recipe(folder: Path, config: StageConfig) -> None:
    """Refuse to resume or reuse what ``folder`` holds when its ``config.yaml`` trained another recipe (a preset edited
    since, another override): its weights would silently stand for the new recipe. Nothing is deleted."""
    path = folder / "config.yaml"
    if not path.is_file():
        return
    try:
        saved = load_config(path)
    except ValueError as err:
        raise RecipeChangedError(f"{folder}: its config.yaml no longer reads as a stage config ({err}); use another "
                                 "output folder, or delete this one to train the stage again") from None
    changes = recipe_changes(saved, config)
    if changes:
        raise RecipeChangedError(f"{folder}: trained with another recipe than the one asked for now ("
                                 + "; ".join(changes) + "); use another output folder, or delete this one to "
                                 "train the stage again (nothing was deleted)")


def _flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for key, value in values.items():
        if isinstance(value, Mapping) and value:
            out |= _flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out
