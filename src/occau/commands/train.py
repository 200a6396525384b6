"""``occau train CONFIG.yaml --out DIR [key=value ...]``: run one training stage."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("train", help="train one stage (mae, teacher or student) from a YAML config",
                              description=__doc__)
    p.add_argument("config", help="stage YAML: a file, or a config installed with occau by name, e.g. "
                                  "real/bp4d_teacher_resnet50_stage1.yaml (see docs/real_data.md)")
    p.add_argument("--out", required=True, help="output folder: checkpoints, logs, exported .safetensors")
    p.add_argument("--no-resume", action="store_true", help="start afresh even if OUT/checkpoints/last.ckpt exists")
    p.add_argument("overrides", nargs="*", help="config overrides such as data.fold=2 optim.lr=1e-4 trainer.devices=4")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from occau.training.config import RecipeChangedError, load_config
    from occau.training.run import train_stage

    try:  # the whole config is checked before any training
        config = load_config(args.config, args.overrides)
    except (ValueError, FileNotFoundError) as err:
        print(f"occau train: {err}", file=sys.stderr)
        return 2
    try:
        exported = train_stage(config, args.out, resume=not args.no_resume)
    except RecipeChangedError as err:
        print(f"occau train: {err}; or --no-resume to train this recipe afresh there", file=sys.stderr)
        return 2
    for name, path in exported.items():
        print(f"{name}: {path}")
    return 0
