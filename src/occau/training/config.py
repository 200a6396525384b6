"""Training configuration as data: nested dataclasses loaded from YAML, overridable with ``key.sub=value``.

One ``StageConfig`` describes one training run completely (data, model, optimisation, trainer), so a run is
reproduced from its YAML file alone and every checkpoint stores the config it was trained with.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

STAGES = ("mae", "teacher", "student")
# What each stage can start from (``init.<role>=FILE``); anything else is a typo that would otherwise train from scratch.
INIT_ROLES = {
    "mae": ("mae",),  # continue pretraining from an MAE checkpoint (official, timm or occau)
    "teacher": ("backbone", "stage1", "weights"),  # ImageNet backbone / stage-1 warm start / a whole trained teacher
    "student": ("mae", "teacher"),  # the frozen encoder and the frozen teacher
}


@dataclass
class DataConfig:
    """Where faces come from and how a training batch is made from them."""

    source: str = "synthfacs"  # "synthfacs" | "prepared"
    dataset: str = "synth-bp4d"  # SynthFACS variant, or "bp4d"/"disfa" for prepared data
    preset: str = "quick"  # SynthFACS preset
    root: str | None = None  # prepared dataset directory (source "prepared")
    cache_dir: str | None = None  # SynthFACS render cache
    fold: int | str = 1  # PROTOCOL §4: fold k tests part k; "all": every subject trains (a model to deploy)
    batch_size: int = 64  # the GLOBAL training batch (all processes, all accumulation steps), which lr is tuned for
    eval_batch_size: int = 128  # per process
    num_workers: int = 0
    hflip: bool = True
    color_jitter: float = 0.0  # brightness/contrast strength, 0 = off
    occlusion: dict[str, float] | None = None  # training occlusion mixture {condition: weight}; None = clean
    occlusion_fills: tuple[str, ...] = ("black",)
    occlusion_probability: float = 1.0  # chance a training face is occluded when ``occlusion`` is set
    patch_size: int | None = None  # token grid of occlusion masks; None: the MAE's patch (16 or 8 for teachers)
    val_fraction: float = 1.0  # fraction of the validation split used each epoch (speed)
    seed: int = 0


    def __post_init__(self) -> None:
        if self.fold not in (1, 2, 3, "all"):
            raise ValueError(f"data.fold must be 1, 2, 3 or all, got {self.fold!r}")
        if self.fold == "all" and self.source != "prepared":
            raise ValueError("data.fold=all (train on every subject) is for prepared real data; SynthFACS has folds 1-3")


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


@dataclass
class StageConfig:
    """One training run: ``stage`` is "mae", "teacher" or "student"."""

    stage: str = "teacher"
    name: str = ""  # the method's name in results, e.g. "teacher", "teacher_occaug", "student"
    data: DataConfig = field(default_factory=DataConfig)
    model: dict[str, Any] = field(default_factory=dict)  # the model family's own config fields
    loss: dict[str, Any] = field(default_factory=dict)
    optim: OptimConfig = field(default_factory=OptimConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    init: dict[str, str] = field(default_factory=dict)  # checkpoints to start from, by role
    probe: ProbeConfig = field(default_factory=ProbeConfig)  # MAE stage only
    seed: int = 0

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.probe.every_n_epochs and self.stage != "mae":
            raise ValueError(f"probe is for the mae stage, not {self.stage!r}")
        if self.probe.score_split == "test" and self.data.preset != "mae-pool":
            raise ValueError("probe.score_split 'test' would score on a fold's test subjects; it is allowed only for "
                             "the 'mae-pool' preset, whose labelled subjects are probe subjects outside every fold")
        unknown = sorted(set(self.init) - set(INIT_ROLES[self.stage]))
        if unknown:
            raise ValueError(f"init: unknown key(s) {unknown} for stage {self.stage!r}; "
                             f"allowed: {list(INIT_ROLES[self.stage])}")


def from_dict(cls: type, values: dict[str, Any], where: str = "") -> Any:
    """Build dataclass ``cls`` from a plain dict, recursing into nested dataclasses; unknown keys are errors."""
    if not isinstance(values, dict):
        raise ValueError(f"{where or cls.__name__}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{where or cls.__name__}: unknown keys {unknown}; known: {sorted(names)}")
    kwargs = {}
    for key, value in values.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            value = from_dict(hint, value, f"{where}{key}.")
        elif _is_tuple(hint) and isinstance(value, list):
            value = tuple(value)
        elif _accepts(hint, float) and isinstance(value, (str, int)) and not isinstance(value, bool):
            value = _to_float(value, f"{where}{key}")  # YAML reads 1e-4 as a string
        kwargs[key] = value
    return cls(**kwargs)


def packaged_configs() -> list[str]:
    """Names of the stage configs installed with occau, e.g. ``real/bp4d_student_vitb.yaml``."""
    root = Path(__file__).resolve().parents[1] / "configs"
    return sorted(p.relative_to(root).as_posix() for p in root.glob("real/*.yaml"))


def resolve_config_path(path: str | Path) -> Path:
    """A YAML file, or the name of a packaged config (``real/NAME.yaml``), so commands in the docs need no path to
    the installed package."""
    path = Path(path)
    if path.is_file():
        return path
    packaged = Path(__file__).resolve().parents[1] / "configs" / path
    if path.as_posix() in packaged_configs():
        return packaged
    raise FileNotFoundError(f"{path}: config file not found, and not a packaged config ({', '.join(packaged_configs())})")


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> StageConfig:
    """Read a stage YAML (a file or a packaged name, or start from defaults) and apply ``a.b=value`` overrides
    (values parsed as YAML)."""
    values: dict[str, Any] = {}
    if path is not None:
        path = resolve_config_path(path)
        values = yaml.safe_load(path.read_text()) or {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key.sub=value")
        set_dotted(values, key, yaml.safe_load(raw))
    try:
        return from_dict(StageConfig, values)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path or 'config'}: {err}") from err


def set_dotted(values: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    node = values
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def to_dict(config: Any) -> dict[str, Any]:
    """A YAML/JSON-safe dict of a config (tuples become lists)."""
    return yaml.safe_load(yaml.safe_dump(_plain(dataclasses.asdict(config))))


def save_config(config: StageConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _accepts(hint: Any, kind: type) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return kind in typing.get_args(hint) and str not in typing.get_args(hint)
    return hint is kind


def _to_float(value: str | int, where: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{where}: expected a number, got {value!r}") from None


def _is_tuple(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_is_tuple(arg) for arg in typing.get_args(hint))
    return origin is tuple or hint is tuple
