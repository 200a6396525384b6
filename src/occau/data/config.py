"""Where faces come from and how a training batch is made from them: the data section of every stage config."""

from __future__ import annotations

from dataclasses import dataclass


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
    # The token grid of occlusion masks (pixels per cell), the one source of it: an MAE must have this patch size.
    # None: the standard grid of the crop size (occau.occlusion.tokens.standard_patch_size: 8 at 64 px, 16 at 224).
    patch_size: int | None = None
    val_faces_fraction: float = 1.0  # fraction of the validation faces scored each epoch (speed), evenly spaced
    seed: int = 0

    def __post_init__(self) -> None:
        if self.fold not in (1, 2, 3, "all"):
            raise ValueError(f"data.fold must be 1, 2, 3 or all, got {self.fold!r}")
        if self.fold == "all" and self.source != "prepared":
            raise ValueError("data.fold=all (train on every subject) is for prepared real data; SynthFACS has folds 1-3")
