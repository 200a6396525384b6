"""Run one training stage from its config: build data and module, fit with Lightning, export safetensors.

The same code runs on one CPU, one GPU, several GPUs or nodes (``trainer.devices``/``num_nodes``/``strategy``).
``data.batch_size`` is the global batch, the one the learning rate was tuned for: each process loads
``batch_size / (processes x trainer.accumulate_grad_batches)``, so adding GPUs changes speed, not the recipe.
An interrupted run resumes from ``OUT/checkpoints/last.ckpt`` (loaded with ``weights_only=True``); because data
order and augmentation are pure functions of (seed, epoch, index), the resumed run ends where an uninterrupted
one would. The exported ``*.safetensors`` files carry their config, AU list, input size, data and fold.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger

from occau.checkpoints.io import save_checkpoint
from occau.config import to_dict
from occau.training.config import StageConfig, check_same_recipe, save_config
from occau.training.stages import STAGES

TRAINED_LICENSE = "weights trained by occau; the licence of the training data applies"


def resolve_precision(precision: str) -> str:
    """"auto": bf16 mixed precision on GPUs that support it, full fp32 elsewhere (CPU)."""
    if precision != "auto":
        return precision
    if torch.cuda.is_available() and torch.cuda.is_bf16_supported():
        return "bf16-mixed"
    return "32-true"


def build_trainer(config: StageConfig, out_dir: Path, callbacks: Sequence[L.Callback] = ()) -> L.Trainer:
    t = config.trainer
    # One file, rewritten at every epoch end: the state to resume from. (Lightning 2.6 writes ``save_last`` only
    # when a top-k checkpoint was written in the same step, so save_top_k=0 + save_last would leave none until
    # training ends; a top-1 checkpoint without a monitor is the latest one.)
    checkpoint = ModelCheckpoint(dirpath=out_dir / "checkpoints", filename="last", save_top_k=1, every_n_epochs=1,
                                 enable_version_counter=False)
    return L.Trainer(
        default_root_dir=out_dir,
        max_epochs=config.optim.epochs,
        max_steps=t.max_steps,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=resolve_precision(t.precision),
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        sync_batchnorm=t.sync_batchnorm,
        log_every_n_steps=t.log_every_n_steps,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        callbacks=[checkpoint, *callbacks],
        logger=CSVLogger(out_dir, name="logs", version=""),
        num_sanity_val_steps=0,
        deterministic=False,
    )


def per_process_batch(config: StageConfig, world_size: int) -> int:
    """The share of the global ``data.batch_size`` one process loads per step (an exact division, or an error: a
    silently rounded batch would change the recipe)."""
    parts = world_size * config.trainer.accumulate_grad_batches
    if config.data.batch_size % parts:
        raise ValueError(
            f"data.batch_size={config.data.batch_size} is the global batch and must divide evenly over {world_size} "
            f"process(es) x {config.trainer.accumulate_grad_batches} accumulation step(s); pick a batch or a device "
            "count that divide (scale optim.lr with the batch if you change it)"
        )
    return config.data.batch_size // parts


def train_stage(
    config: StageConfig, out_dir: str | Path, resume: bool = True, callbacks: Sequence[L.Callback] = ()
) -> dict[str, Path]:
    """Fit one stage; returns the exported checkpoints by method name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    last = out_dir / "checkpoints" / "last.ckpt"
    if resume and last.is_file():
        check_same_recipe(out_dir, config)  # resuming another recipe's checkpoint would mix two runs
    save_config(config, out_dir / "config.yaml")
    L.seed_everything(config.seed, workers=True, verbose=False)
    module, datamodule = STAGES[config.stage].build(config)
    callbacks = [*callbacks, *module.stage_callbacks(out_dir)]
    trainer = build_trainer(config, out_dir, callbacks)
    datamodule.batch_size = per_process_batch(config, trainer.world_size)
    if trainer.is_global_zero:
        print(f"{config.name or config.stage}: global batch {config.data.batch_size} = {datamodule.batch_size} per "
              f"process x {trainer.world_size} process(es) x {config.trainer.accumulate_grad_batches} accumulation; "
              f"lr {config.optim.lr:g}; precision {trainer.precision}", flush=True)
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if resume and last.is_file() else None, weights_only=True)
    if not trainer.is_global_zero:
        return {}
    return export_stage(config, module, out_dir)


def export_stage(config: StageConfig, module, out_dir: Path) -> dict[str, Path]:
    """Write each trained model as a self-describing safetensors file (its best validation weights) with the run's
    provenance, and ``selection.json`` (which epoch each model's weights come from)."""
    provenance = {
        "license": TRAINED_LICENSE,
        "data": {"source": config.data.source, "dataset": config.data.dataset, "preset": config.data.preset,
                 "fold": config.data.fold, "test_part": None if config.data.fold == "all" else config.data.fold,
                 "seed": config.data.seed},
        "training": to_dict(config),
    }
    exported, selections = {}, {}
    for name in module.trained_models():
        state, selections[name] = module.best_state(name)
        meta = module.checkpoint_meta(name, TRAINED_LICENSE, out_dir) | provenance
        meta |= {"selection": selections[name], "name": name}
        exported[name] = save_checkpoint(out_dir / f"{name}.safetensors", state, meta)
    (out_dir / "selection.json").write_text(json.dumps(selections, indent=2))
    return exported
