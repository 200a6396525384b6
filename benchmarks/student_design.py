"""Which student design learns? A cheap, decisive comparison on fold 1's *validation* subjects.

Trains one student per variant for a fixed number of steps on fold 1's training subjects under the benchmark's
training occlusion mixture, and scores it on the validation subjects (clean and 50 % random patches). The test part
is never read. Variants differ in one thing at a time: the readout (grid / set), the graph head's start (teacher /
fresh), the encoder (MAE / random init, frozen / fine-tuned) and the KD terms.

    python benchmarks/student_design.py --run runs/quick --variants grid_frozen,set_frozen --out docs/benchmarks

``--run`` is a finished (or partly finished) ``occau bench synth`` folder: its ``mae/mae.safetensors``, fold 1's
``teacher_stage2/teacher.safetensors`` and the render cache are reused. Results are appended to
``OUT/student_design.jsonl`` (one line per variant and seed) and summarised in ``OUT/student_design.md``.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from occau.checkpoints.mae import load_mae
from occau.checkpoints.megraphau import load_megraphau
from occau.evaluation.metrics import f1_scores
from occau.losses.distill import DistillationConfig, DistillationLoss
from occau.models.mae import MaskedAutoencoderViT
from occau.models.student import LatentStudent, StudentConfig
from occau.occlusion import RandomOcclusion
from occau.training.config import DataConfig
from occau.training.data import EpochSampler, FaceTensors, build_face_dataset
from occau.training.run import training_class_weights
from occau.training.config import StageConfig

TRAINING_MIXTURE = {"clean": 1, "patch25": 1, "patch50": 2, "patch75": 1, "square25": 1, "square50": 1, "upper": 0.5,
                    "lower": 0.5, "left": 0.5, "right": 0.5, "center": 0.5, "eyes": 0.5, "mouth": 0.5, "mask": 0.5,
                    "sunglasses": 0.5, "hand": 0.5}


@dataclass(frozen=True)
class Variant:
    readout: str = "grid"
    head: str = "teacher"  # "teacher": graph head copied from the teacher; "fresh": random init
    encoder: str = "mae"  # "mae" or "random"
    finetune: str = "none"  # "none", "all" or "lastN"
    kd: dict = field(default_factory=dict)  # DistillationConfig fields beyond au=1 (node/edge weights, distance)
    layer_decay: float = 1.0  # per-block lr multiplier going down the encoder (MAE fine-tuning convention)
    encoder_lr_scale: float = 1.0


NO_KD = {"node": 0.0, "edge": 0.0}
COS_KD = {"node": 1.0, "edge": 1.0, "feature_distance": "cosine"}
VARIANTS: dict[str, Variant] = {
    "set_frozen": Variant(readout="set", kd=NO_KD),
    "grid_frozen": Variant(kd=NO_KD),
    "grid_frozen_fresh": Variant(head="fresh", kd=NO_KD),
    "grid_ft": Variant(finetune="all", kd=NO_KD),
    "grid_ft_fresh": Variant(finetune="all", head="fresh", kd=NO_KD),
    "grid_ft_random": Variant(finetune="all", encoder="random", kd=NO_KD),
    "grid_ft_cos": Variant(finetune="all", kd=COS_KD),
    "grid_ft_random_cos": Variant(finetune="all", encoder="random", kd=COS_KD),
    "grid_frozen_cos": Variant(kd=COS_KD),
    "grid_ft_ld": Variant(finetune="all", kd=NO_KD, layer_decay=0.75),
    "grid_last2": Variant(finetune="last2", kd=NO_KD),
}


def encoder_for(variant: Variant, mae_path: Path) -> MaskedAutoencoderViT:
    mae = load_mae(mae_path)
    if variant.encoder == "random":
        torch.manual_seed(0)
        mae = MaskedAutoencoderViT(mae.config, decoder=False)
    encoder = MaskedAutoencoderViT(mae.config, decoder=False)
    encoder.load_state_dict({k: v for k, v in mae.state_dict().items() if k in encoder.state_dict()})
    return encoder


def trainable_blocks(encoder: MaskedAutoencoderViT, finetune: str) -> list[int]:
    depth = len(encoder.blocks)
    if finetune == "none":
        return []
    if finetune == "all":
        return list(range(depth))
    return list(range(depth - int(finetune.removeprefix("last")), depth))


def param_groups(encoder, student, variant: Variant, lr: float, wd: float) -> list[dict]:
    groups = [{"params": [p for p in student.parameters()], "lr": lr, "weight_decay": wd}]
    blocks = trainable_blocks(encoder, variant.finetune)
    depth = len(encoder.blocks)
    for p in encoder.parameters():
        p.requires_grad_(False)
    if not blocks:
        return groups
    for i in blocks:
        scale = variant.encoder_lr_scale * variant.layer_decay ** (depth - i)
        params = list(encoder.blocks[i].parameters())
        for p in params:
            p.requires_grad_(True)
        groups.append({"params": params, "lr": lr * scale, "weight_decay": wd})
    if variant.finetune == "all":
        rest = [encoder.cls_token, *encoder.patch_embed.parameters()]
        for p in rest:
            p.requires_grad_(True)
        groups.append({"params": rest, "lr": lr * variant.encoder_lr_scale * variant.layer_decay ** (depth + 1),
                       "weight_decay": wd})
    last = list(encoder.norm.parameters())
    for p in last:
        p.requires_grad_(True)
    groups.append({"params": last, "lr": lr * variant.encoder_lr_scale, "weight_decay": 0.0})
    return groups


def validation_tensors(data: DataConfig, patch_size: int, stride: int) -> dict[str, dict[str, torch.Tensor]]:
    faces = build_face_dataset(data, "val")
    keep = list(range(0, len(faces), stride))
    out = {}
    for condition in ("clean", "patch50"):
        ft = FaceTensors(torch.utils.data.Subset(faces, keep), patch_size=patch_size, condition=condition,
                         seed=data.seed)
        batch = next(iter(DataLoader(ft, batch_size=len(ft))))
        out[condition] = batch
    return out


@torch.no_grad()
def evaluate(encoder, student, val: dict, batch_size: int = 128) -> dict[str, float]:
    encoder.eval()
    student.eval()
    scores = {}
    for condition, batch in val.items():
        probs = []
        for i in range(0, len(batch["labels"]), batch_size):
            latents = encoder.encode_visible(batch["image"][i:i + batch_size], batch["token_mask"][i:i + batch_size])
            probs.append(student(latents).probs)
        scores[condition] = 100 * f1_scores(torch.cat(probs), batch["labels"], batch["label_mask"])[1]
    return scores


def train_variant(name: str, variant: Variant, run: Path, steps: int, batch_size: int, lr: float, seed: int,
                  val: dict, eval_every: int) -> dict:
    torch.manual_seed(seed)
    data = DataConfig(source="synthfacs", dataset="synth-bp4d", preset="quick", cache_dir=str(run / "data"),
                      fold=1, seed=0, patch_size=8)
    encoder = encoder_for(variant, run / "mae" / "mae.safetensors")
    teacher = load_megraphau(run / "fold1" / "teacher_stage2" / "teacher.safetensors").eval()
    config = StudentConfig(embed_dim=encoder.config.embed_dim, num_patches=encoder.config.num_patches,
                           num_aus=teacher.config.num_aus, dim=128, num_heads=4, edge_depth=0, readout=variant.readout)
    student = LatentStudent(config)
    if variant.head == "teacher":
        student.init_from_teacher(teacher.state_dict())
    weights = torch.tensor(training_class_weights(StageConfig(data=data)), dtype=torch.float32)
    loss_fn = DistillationLoss(DistillationConfig(**{"node": 0.0, "edge": 0.0, **variant.kd}), weight=weights)
    optimizer = torch.optim.AdamW(param_groups(encoder, student, variant, lr, 0.05), betas=(0.9, 0.999))
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    train_faces = FaceTensors(build_face_dataset(data, "train"), patch_size=8, train=True, hflip=True,
                              occlusion=RandomOcclusion(TRAINING_MIXTURE, patch_size=8), seed=seed, with_clean=True)
    sampler = EpochSampler(len(train_faces), seed=seed)
    loader = DataLoader(train_faces, batch_size=batch_size, sampler=sampler, drop_last=True)
    finetuned = bool(trainable_blocks(encoder, variant.finetune))
    history, step, start = [], 0, time.perf_counter()
    while step < steps:
        for batch in loader:
            if step >= steps:
                break
            factor = min(1.0, (step + 1) / (steps * 0.05)) * 0.5 * (1 + np.cos(np.pi * step / steps))
            for g, base in zip(optimizer.param_groups, base_lrs):
                g["lr"] = base * factor
            student.train()
            encoder.train(finetuned)
            with torch.set_grad_enabled(finetuned):
                latents = encoder.encode_visible(batch["image"], batch["token_mask"])
            target = None
            if loss_fn.config.needs_teacher:
                with torch.no_grad():
                    target = teacher(batch["clean_image"])
            terms = loss_fn(student(latents), target, batch["labels"], batch["label_mask"])
            optimizer.zero_grad(set_to_none=True)
            terms["total"].backward()
            optimizer.step()
            step += 1
            if step % eval_every == 0 or step == steps:
                scores = evaluate(encoder, student, val)
                history.append({"step": step, **scores, **{k: float(v) for k, v in terms.items()}})
                print(name, history[-1], f"{time.perf_counter() - start:.0f}s", flush=True)
        sampler.set_epoch(sampler.epoch + 1)
    return {"variant": name, "spec": variant.__dict__, "seed": seed, "steps": steps, "batch_size": batch_size,
            "lr": lr, "final": history[-1], "history": history, "seconds": round(time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--variants", default="grid_frozen,set_frozen")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--eval-every", type=int, default=100)
    parser.add_argument("--val-stride", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    data = DataConfig(source="synthfacs", dataset="synth-bp4d", preset="quick", cache_dir=str(args.run / "data"),
                      fold=1, seed=0)
    val = validation_tensors(data, 8, args.val_stride)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.variants.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            result = train_variant(name, VARIANTS[name], args.run, args.steps, args.batch_size, args.lr, seed, val,
                                   args.eval_every)
            with open(args.out / "student_design.jsonl", "a") as f:
                f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
