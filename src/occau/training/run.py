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

from occau.aus import dataset_aus
from occau.checkpoints.io import save_checkpoint
from occau.checkpoints.student import student_meta
from occau.data.statistics import class_weights
from occau.training.config import StageConfig, save_config, to_dict
from occau.training.data import FaceDataModule, build_face_dataset

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
    checkpoint = ModelCheckpoint(dirpath=out_dir / "checkpoints", save_last=True, save_top_k=0, every_n_epochs=1)
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


def teacher_patch_size(config: StageConfig) -> int:
    """Token grid of a teacher run's occlusion masks (teachers see pixels; the grid only shapes patch occlusion).

    Set ``data.patch_size`` to the MAE's patch so an occlusion-augmented teacher trains on the test-time grid."""
    if config.data.patch_size:
        return int(config.data.patch_size)
    size = int(config.model.get("img_size", 224))
    return 16 if size % 16 == 0 else 8


def training_class_weights(config: StageConfig) -> list[float]:
    """WA weights from the training split's labels (unknown labels excluded), as upstream computes them per fold."""
    faces = build_face_dataset(config.data, "train")
    labels, mask = faces.label_arrays()[:2]
    return class_weights(labels, mask).tolist()


def train_stage(
    config: StageConfig, out_dir: str | Path, resume: bool = True, callbacks: Sequence[L.Callback] = ()
) -> dict[str, Path]:
    """Fit one stage; returns the exported checkpoints by method name."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, out_dir / "config.yaml")
    L.seed_everything(config.seed, workers=True, verbose=False)
    module, datamodule = _build(config)
    if config.stage == "mae" and config.probe.every_n_epochs:
        from occau.training.probe import ProbeCallback

        callbacks = [*callbacks, ProbeCallback(config.data, config.probe, module.model.config.patch_size, out_dir)]
    trainer = build_trainer(config, out_dir, callbacks)
    datamodule.batch_size = per_process_batch(config, trainer.world_size)
    if trainer.is_global_zero:
        print(f"{config.name or config.stage}: global batch {config.data.batch_size} = {datamodule.batch_size} per "
              f"process x {trainer.world_size} process(es) x {config.trainer.accumulate_grad_batches} accumulation; "
              f"lr {config.optim.lr:g}; precision {trainer.precision}", flush=True)
    last = out_dir / "checkpoints" / "last.ckpt"
    trainer.fit(module, datamodule=datamodule, ckpt_path=last if resume and last.is_file() else None, weights_only=True)
    if not trainer.is_global_zero:
        return {}
    return _export(config, module, out_dir)


def _build(config: StageConfig):
    if config.stage == "mae":
        from occau.training.mae_module import MAEModule

        module = MAEModule(config)
        if "mae" in config.init:
            _init_mae(module, config.init["mae"])
        patch = int(config.model["patch_size"])
        return module, FaceDataModule(config.data, patch, train_split="pretrain")
    weights = training_class_weights(config)
    if config.stage == "teacher":
        from occau.training.teacher_module import TeacherModule

        module = TeacherModule(config, weights)
        _init_teacher(module, config)
        return module, FaceDataModule(config.data, teacher_patch_size(config))
    from occau.checkpoints.mae import load_mae
    from occau.checkpoints.megraphau import load_megraphau
    from occau.training.student_module import StudentModule

    encoder = load_mae(config.init["mae"])
    teacher = load_megraphau(config.init["teacher"])
    module = StudentModule(config, weights, encoder, teacher)
    return module, FaceDataModule(config.data, encoder.config.patch_size, with_clean=True)


def _init_mae(module, path: str) -> None:
    """Continued pretraining: every weight in the file is loaded; only decoder keys may start fresh (the official
    ``mae_pretrain`` release has no decoder). Prints what was loaded so a run's log says where it started."""
    from occau.checkpoints.mae import init_mae_weights

    fresh = init_mae_weights(module.model, path)
    loaded = len(module.model.state_dict()) - len(fresh)
    shown = ", ".join(sorted({k.split(".")[0] for k in fresh})) or "none"
    print(f"mae: {loaded} tensors from {path}; {len(fresh)} start fresh ({shown})", flush=True)


def _init_teacher(module, config: StageConfig) -> None:
    """Stage 2 warm-starts from stage 1 exactly as upstream; a backbone file gives ImageNet initialisation;
    ``weights`` starts from a whole trained teacher."""
    from occau.checkpoints.megraphau import init_stage2_from_stage1, load_backbone_weights

    if "backbone" in config.init:
        load_backbone_weights(module.model, config.init["backbone"])
    if "stage1" in config.init:
        from occau.checkpoints.io import load_checkpoint

        state, _ = load_checkpoint(config.init["stage1"])
        init_stage2_from_stage1(module.model, state)
    if "weights" in config.init:  # fine-tuning a whole teacher (e.g. the occlusion-augmented baseline)
        from occau.checkpoints.io import load_exact
        from occau.checkpoints.megraphau import read_state_dict, to_occau_names

        state, _ = read_state_dict(config.init["weights"])
        load_exact(module.model, to_occau_names(state, module.model, config.init["weights"]), config.init["weights"])


def _export(config: StageConfig, module, out_dir: Path) -> dict[str, Path]:
    """Write each trained model as a self-describing safetensors file (best validation weights)."""
    from occau.checkpoints.mae import mae_meta
    from occau.checkpoints.megraphau import megraphau_meta

    provenance = {
        "license": TRAINED_LICENSE,
        "data": {"source": config.data.source, "dataset": config.data.dataset, "preset": config.data.preset,
                 "fold": config.data.fold, "test_part": None if config.data.fold == "all" else config.data.fold,
                 "seed": config.data.seed},
        "training": to_dict(config),
    }
    if config.stage == "mae":
        meta = mae_meta(module.model, config.name or "mae", TRAINED_LICENSE) | provenance
        if (out_dir / "probe.json").is_file():  # the AU probe's curve over pretraining, vs a random-init encoder
            meta["probe"] = json.loads((out_dir / "probe.json").read_text())
        return {config.name or "mae": save_checkpoint(out_dir / "mae.safetensors", module.model.state_dict(), meta)}
    provenance["aus"] = list(dataset_aus(config.data.dataset))
    exported = {}
    for name in module.trained_models():
        state, selection = module.best_state(name)
        if config.stage == "teacher":
            meta = megraphau_meta(module.model.config)
        else:
            model = module.models[name]  # state: encoder.* + student.*, the bundle layout
            meta = student_meta(model.student.config, model.encoder, module.variants[name])
            meta["encoder_training"] = {"finetune_blocks": config.optim.finetune_blocks,
                                       "layer_decay": config.optim.layer_decay,
                                       "init": config.loss.get("encoder_init", "pretrained")}
        meta |= provenance | {"selection": selection, "name": name}
        exported[name] = save_checkpoint(out_dir / f"{name}.safetensors", state, meta)
    (out_dir / "selection.json").write_text(json.dumps(
        {n: module.best_state(n)[1] for n in module.trained_models()}, indent=2))
    return exported
