"""Which student design learns? Decided on fold 1's *validation* subjects with the benchmark's own student stage.

Each experiment is the quick preset's student stage with a few fields changed (readout, graph-head start, encoder
fine-tuning, encoder init, KD weights), trained by the same code as ``occau bench`` (``train_stage``), for the same
steps. Its exported students are then scored on fold 1's validation subjects, clean and under 50 % random patches,
with the benchmark's evaluation code. The test part is never read.

    python benchmarks/student_design.py --bench-dir runs/quick --experiments readout,head --out runs/design

``--bench-dir`` is a benchmark folder of ``--preset`` (default quick) holding fold 1's teacher
(``fold1/teacher_stage2``) and the render cache; ``--mae`` the MAE to start from (default: the shipped one);
``--steps`` the optimiser steps of every experiment unless the experiment sets its own (``STEPS`` key). One JSON line
per experiment and student is appended to ``RESULTS/student_design.jsonl`` (default ``benchmarks/results``) and the
table ``student_design.md`` is rewritten.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from occau.aus import dataset_aus
from occau.benchmark import load_bench_config, stage_config
from occau.checkpoints.shipped import shipped_weights
from occau.checkpoints.io import read_meta
from occau.evaluation.evaluate import evaluate_conditions, every_nth
from occau.evaluation.references import fold_references
from occau.evaluation.methods import load_methods
from occau.data.datasets import build_face_dataset
from occau.training.run import train_stage

RESULTS = Path(__file__).parent / "results"
STEPS = "steps"  # an experiment's own optimiser steps (else --steps), popped before its changes merge
TEACHER_ROW = "clean teacher"  # the fold's teacher, scored beside every experiment's students


def merge(base: dict, update: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict) and key != "variants":
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def changes(*parts: dict) -> dict:
    """Change fragments merged in order (nested sections combine, so NO_KD survives a later ``loss`` fragment)."""
    return functools.reduce(merge, parts, {})


FROZEN = {"optim": {"finetune_blocks": 0}}
TOP2 = {"optim": {"finetune_blocks": 2}}
ALL_BLOCKS = {"optim": {"finetune_blocks": 6, "layer_decay": 0.75}}
NO_KD = {"loss": {"variants": {"student": "no_kd"}}}
RANDOM_INIT = {"loss": {"encoder_init": "random"}}
FRESH_HEAD = {"loss": {"init_from_teacher": False}}
COSINE_KD = {"loss": {"kd": {"feature_distance": "cosine"}}}
METHOD_KD = {"loss": {"variants": {"student": {"node": 0.3, "edge": 0.3}}}}  # the presets' KD, without the no-KD twin
NO_LAYER_DECAY = {"optim": {"layer_decay": 1.0}}


def maps(r: int) -> dict:
    return {"model": {"spatial_maps": r}}


def kd_variants(variants: dict) -> dict:
    return merge(COSINE_KD, {"loss": {"variants": variants}})


EXPERIMENTS: dict[str, list[tuple[str, dict]]] = {
    # name -> [(tag, changes to the quick preset's student stage)]; changes merge into the stage dict.
    "readout": [("set_frozen", changes(FROZEN, NO_KD, {"model": {"readout": "set", "depth": 2}})),
                ("grid_frozen", changes(FROZEN, NO_KD))],
    "head": [("grid_frozen_fresh_head", changes(FROZEN, NO_KD, FRESH_HEAD))],
    "finetune": [("grid_top2", changes(NO_KD, TOP2)), ("grid_all", changes(NO_KD, ALL_BLOCKS))],
    "control": [("grid_top2_random_init", changes(NO_KD, TOP2, RANDOM_INIT)),
                ("grid_all_random_init", changes(NO_KD, ALL_BLOCKS, RANDOM_INIT))],
    # Levers on the whole-encoder student without KD (session 4): graph-head start, learning rate, rank of the grid
    # readout, and the no-pretraining control under the same recipe.
    "levers": [("all_fresh_head", changes(NO_KD, ALL_BLOCKS, FRESH_HEAD)),
               ("all_lr3e-3", changes(NO_KD, ALL_BLOCKS, {"optim": {"lr": 3e-3}})),
               ("all_maps16", changes(NO_KD, ALL_BLOCKS, maps(16))),
               ("all_random_init", changes(NO_KD, ALL_BLOCKS, RANDOM_INIT))],
    # The rank of the grid readout won (maps16 above); around it: rank 32, lr, the control, and KD weights.
    "levers2": [("all_maps32", changes(NO_KD, ALL_BLOCKS, maps(32))),
                ("all_maps16_lr3e-3", changes(NO_KD, ALL_BLOCKS, maps(16), {"optim": {"lr": 3e-3}})),
                ("all_maps16_random_init", changes(NO_KD, ALL_BLOCKS, maps(16), RANDOM_INIT)),
                ("all_maps16_kd_sweep", changes(ALL_BLOCKS, maps(16), kd_variants({
                    "kd0": "no_kd", "kd0_3": {"node": 0.3, "edge": 0.3}, "kd1": {"node": 1, "edge": 1},
                    "kd3": {"node": 3, "edge": 3}})))],
    # The chosen readout (rank 32), with and without node + edge KD (student names may not contain a dot).
    "kd32": [("all_maps32_kd", changes(ALL_BLOCKS, maps(32), kd_variants({"kd0": "no_kd",
                                                                         "kd1": {"node": 1, "edge": 1}})))],
    # KD weight at rank 32; kd0_rerun repeats kd0 with the next readout initialisation (same batches): the noise
    # of one training run, read against the KD differences.
    "kd32w": [("all_maps32_kd_weights", changes(ALL_BLOCKS, maps(32), kd_variants({
        "kd0": "no_kd", "kd0_rerun": "no_kd", "kd0_1": {"node": 0.1, "edge": 0.1},
        "kd0_3": {"node": 0.3, "edge": 0.3}})))],
    # KD on what the teacher's graph reads (f_v, GEM's f_e) instead of what it outputs, and node-only output KD.
    "kdin": [("all_maps32_kd_graph_input", changes(ALL_BLOCKS, maps(32), kd_variants({
        "in0_3": {"node": 0.3, "edge": 0.3, "kd_features": "graph_input"},
        "in1": {"node": 1, "edge": 1, "kd_features": "graph_input"},
        "node0_3": {"node": 0.3, "edge": 0}})))],
    # Issue 20: a fair no-pretraining control. The method's student on a random-init encoder gets its own recipe (no
    # layer decay, lr 1e-3 or 3e-3), at the student's length (3 epochs, S steps) and at 3x (9 epochs); the method at
    # both lengths beside it; and a scratch ViT with a plain linear grid readout (R = 1 + L: one weight per cell).
    "fair_control": [
        *((f"control_lr{lr}_e{epochs}", changes(METHOD_KD, RANDOM_INIT, NO_LAYER_DECAY,
                                                {"optim": {"lr": float(lr), "epochs": epochs}, STEPS: -1}))
          for epochs in (3, 9) for lr in ("1e-3", "3e-3")),
        *((f"method_e{epochs}", changes(METHOD_KD, {"optim": {"epochs": epochs}, STEPS: -1})) for epochs in (3, 9)),
        ("scratch_linear_lr1e-3_e9", changes(NO_KD, RANDOM_INIT, NO_LAYER_DECAY, maps(65),
                                             {"optim": {"lr": 1e-3, "epochs": 9}, STEPS: -1})),
    ],
    # lr 3e-3 left the control at the WA constant at both lengths: a lower lr, and the 1e-3 one with a longer warmup.
    "fair_control2": [
        ("control_lr3e-4_e9", changes(METHOD_KD, RANDOM_INIT, NO_LAYER_DECAY,
                                      {"optim": {"lr": 3e-4, "epochs": 9}, STEPS: -1})),
        ("control_lr1e-3_warm1_e9", changes(METHOD_KD, RANDOM_INIT, NO_LAYER_DECAY,
                                            {"optim": {"lr": 1e-3, "epochs": 9, "warmup_epochs": 1.0}, STEPS: -1})),
    ],
    # A 1-epoch warmup lifted the control by 10 points (lr 3e-4 by 5): a longer one.
    "fair_control3": [
        ("control_lr1e-3_warm2_e9", changes(METHOD_KD, RANDOM_INIT, NO_LAYER_DECAY,
                                            {"optim": {"lr": 1e-3, "epochs": 9, "warmup_epochs": 2.0}, STEPS: -1})),
    ],
    # A 2-epoch warmup lifted the control to 64.6 / 57.6: the same lever for the method, more of it for the control,
    # and for the scratch ViT.
    "fair_control4": [
        ("method_warm2_e9", changes(METHOD_KD, {"optim": {"epochs": 9, "warmup_epochs": 2.0}, STEPS: -1})),
        ("control_lr1e-3_warm3_e9", changes(METHOD_KD, RANDOM_INIT, NO_LAYER_DECAY,
                                            {"optim": {"lr": 1e-3, "epochs": 9, "warmup_epochs": 3.0}, STEPS: -1})),
        ("scratch_linear_lr1e-3_warm2_e9", changes(NO_KD, RANDOM_INIT, NO_LAYER_DECAY, maps(65), {
            "optim": {"lr": 1e-3, "epochs": 9, "warmup_epochs": 2.0}, STEPS: -1})),
    ],
    # Issue 20, the clean gap (student under 50 % patches ~4 points below the clean teacher over the study's draws),
    # with the 8 + 4-epoch teacher (run with --bench-dir of a quick run that trained it): the KD weight chosen with the
    # under-trained 2 + 1-epoch teacher at 300 steps, re-measured at the study's 738 steps now that the teacher is
    # ahead of its students; and 2x the steps (the method gained 4.3 at patch50 from 246 to 738).
    "clean_gap_kd": [("gap_kd_weight_e9", changes(
        kd_variants({"kd0": "no_kd", "kd0_3": {"node": 0.3, "edge": 0.3}, "kd1": {"node": 1, "edge": 1},
                     "kd3": {"node": 3, "edge": 3}}), {"optim": {"epochs": 9}, STEPS: -1}))],
    "clean_gap_steps": [("gap_method_e18", changes(METHOD_KD, {"optim": {"epochs": 18}, STEPS: -1}))],
    "kd": [("kd_cosine_sweep", kd_variants({
        "kd0": "no_kd", "kd0_3": {"node": 0.3, "edge": 0.3}, "kd1": {"node": 1, "edge": 1},
        "kd3": {"node": 3, "edge": 3}, "node1": {"node": 1, "edge": 0}, "edge1": {"node": 0, "edge": 1}}))],
}


def run_experiment(tag: str, changes: dict, args: argparse.Namespace) -> list[dict]:
    bench = load_bench_config(args.preset)
    bench.data["cache_dir"] = str(args.bench_dir / "data")
    changes = copy.deepcopy(changes)
    steps = changes.pop(STEPS, args.steps)
    bench.stages["student"] = merge(bench.stages["student"], changes)
    teacher = args.bench_dir / "fold1" / "teacher_stage2" / "teacher.safetensors"
    config = stage_config(bench, "student", 1, init={"mae": str(args.mae), "teacher": str(teacher)})
    config = replace(config, trainer=replace(config.trainer, max_steps=steps, progress_bar=False))
    out = args.out / tag
    start = time.perf_counter()
    exported = train_stage(config, out)
    seconds = time.perf_counter() - start
    steps = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")["global_step"]
    # The clean teacher is scored on the same faces: the clean gap (student under 50 % patches minus the teacher on
    # clean faces) is read on validation subjects, per AU as well.
    methods = load_methods({TEACHER_ROW: f"teacher:{teacher}",
                            **{name: f"student:{path}" for name, path in exported.items()}})
    faces = every_nth(build_face_dataset(config.data, "val"), args.val_stride)
    scores = evaluate_conditions(methods, faces, ["clean", "patch50"], len(dataset_aus(config.data.dataset)),
                                 batch_size=128, fill="black", seed=config.data.seed)
    teacher_clean = scores[TEACHER_ROW]["clean"]
    refs = fold_references(build_face_dataset(config.data, "train"), faces)
    mae = read_meta(args.mae) or {}
    mae_source = f"{mae.get('name', Path(args.mae).stem)} ({mae.get('data', {}).get('preset', '?')} preset)"
    rows = []
    for name in exported:
        rows.append({"experiment": tag, "student": name, "changes": changes, "steps": steps,
                     "mae": mae_source, "seconds": round(seconds),
                     "all_present": round(100 * refs["all_present"]["f1_mean"], 2),
                     "wa_constant": round(100 * refs["wa_constant"]["f1_mean"], 2),
                     "val_clean": round(100 * scores[name]["clean"]["f1_mean"], 2),
                     "val_patch50": round(100 * scores[name]["patch50"]["f1_mean"], 2),
                     "val_patch50_per_au": [round(100 * f, 1) for f in scores[name]["patch50"]["f1_per_au"]],
                     "teacher_val_clean": round(100 * teacher_clean["f1_mean"], 2),
                     "teacher_val_clean_per_au": [round(100 * f, 1) for f in teacher_clean["f1_per_au"]],
                     "aus": list(dataset_aus(config.data.dataset)), "val_faces": len(faces)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def describe(changes: dict, prefix: str = "") -> str:
    """The changes to the preset's student stage, flattened: ``optim.lr=0.001, loss.encoder_init=random``."""
    parts = []
    for key, value in changes.items():
        if isinstance(value, dict) and key != "variants":
            parts.append(describe(value, f"{prefix}{key}."))
        else:
            parts.append(f"{prefix}{key}={json.dumps(value, separators=(',', ':'))}")
    return ", ".join(p for p in parts if p)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"  # rows written before a column existed


def write_table(path: Path) -> None:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    lines = ["| experiment | student | changes to the student stage | MAE | steps | val clean | val patch50 | "
             "clean teacher | all AUs present | WA constant | train s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['experiment']} | {r['student']} | {describe(r.get('changes', {}))} | {r['mae']} | {r['steps']} | "
              f"{r['val_clean']:.1f} | {r['val_patch50']:.1f} | {_cell(r.get('teacher_val_clean'))} | "
              f"{_cell(r.get('all_present'))} | {_cell(r.get('wa_constant'))} | {r['seconds']} |" for r in rows]
    path.with_suffix(".md").write_text(
        "# Student design experiments (fold 1, validation subjects)\n\nWritten by benchmarks/student_design.py; "
        "F1 (%) at 0.5, mean over 12 AUs; the references and the fold's clean teacher (on clean faces; recorded "
        "from the clean-gap experiments on) are scored on the same validation faces.\n\n"
        + "\n".join(lines) + "\n" + gap_table(rows))


def gap_table(rows: list[dict]) -> str:
    """Per AU, the student under 50 % patches minus the clean teacher on the same validation faces: where the clean
    gap sits. Only rows that recorded per-AU scores."""
    rows = [r for r in rows if "teacher_val_clean_per_au" in r]
    if not rows:
        return ""
    aus = rows[0]["aus"]
    lines = ["| experiment | student | " + " | ".join(f"AU{au}" for au in aus) + " | mean |",
             "|---|---|" + "---|" * (len(aus) + 1)]
    for r in rows:
        gaps = [s - t for s, t in zip(r["val_patch50_per_au"], r["teacher_val_clean_per_au"])]
        lines.append(f"| {r['experiment']} | {r['student']} | " + " | ".join(f"{g:+.1f}" for g in gaps)
                     + f" | {r['val_patch50'] - r['teacher_val_clean']:+.1f} |")
    return ("\n## The clean gap per AU (student under 50 % patches minus the clean teacher on clean faces)\n\n"
            + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench-dir", type=Path, required=True)
    parser.add_argument("--preset", default="quick", help="the benchmark preset whose student stage is changed")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the .jsonl and .md tables go")
    parser.add_argument("--mae", type=Path, default=None)
    parser.add_argument("--experiments", default="readout,head,finetune,control,kd")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--val-stride", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/student_design"))
    args = parser.parse_args(argv)
    args.mae = args.mae or shipped_weights()
    args.results.mkdir(parents=True, exist_ok=True)
    log = args.results / "student_design.jsonl"
    for experiment in args.experiments.split(","):
        for tag, changes in EXPERIMENTS[experiment]:
            for row in run_experiment(tag, changes, args):
                with log.open("a") as f:
                    f.write(json.dumps(row) + "\n")
            write_table(log)


if __name__ == "__main__":
    main()
