"""``occau bench synth --preset {smoke,quick,full} --out DIR``: the whole study on SynthFACS, or on prepared BP4D/DISFA
with ``occau bench bp4d --data DIR --preset real/bench_bp4d.yaml --out DIR [key=value ...]``."""

from __future__ import annotations

import argparse
import sys
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("bench", help="run every stage for every fold, evaluate, write the report",
                              description=__doc__)
    p.add_argument("dataset", choices=["synth", "bp4d", "disfa"],
                   help="synth: generate SynthFACS; bp4d/disfa: a dataset prepared by `occau prepare`")
    p.add_argument("--preset", default="quick",
                   help="smoke, quick, full (SynthFACS), real/bench_bp4d.yaml, real/bench_disfa.yaml, or a YAML file")
    p.add_argument("--variant", default=None, help="SynthFACS variant: synth-bp4d (default) or synth-disfa")
    p.add_argument("--data", default=None, help="prepared dataset folder (bp4d/disfa)")
    p.add_argument("--folds", default=None, help="comma-separated folds to run, e.g. 1,2,3")
    p.add_argument("--seed", type=int, default=None,
                   help="SynthFACS draw (identities, episodes, folds) and every training seed; default 0")
    p.add_argument("--seeds", default=None, metavar="S,S,...",
                   help="a study over draws: the preset once per seed (OUT/seed<s>/), then one report with the "
                        "spread over draws and paired 95 %% intervals for every claim (OUT/report/draws.md)")
    p.add_argument("--pretrain-mae", action="store_true",
                   help="pretrain the MAE (the preset's stages.mae) instead of starting from the shipped one")
    p.add_argument("--out", required=True, help="output folder (resumes if it holds an earlier run)")
    p.add_argument("overrides", nargs="*", default=[],
                   help="preset overrides, e.g. stages.mae.init.mae=mae_visualize_vit_base.pth trainer.devices=8")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from occau.benchmark import load_bench_config, run_benchmark, run_draws
    from occau.training.config import RecipeChangedError

    if args.dataset != "synth" and not args.data:
        print(f"occau bench {args.dataset}: --data DIR (from `occau prepare {args.dataset}`) is required",
              file=sys.stderr)
        return 2
    if args.dataset != "synth" and not args.preset.endswith((".yaml", ".yml")):
        print(f"occau bench {args.dataset}: --preset must be a benchmark YAML sized for real faces (the packaged "
              f"presets are SynthFACS-sized, 64 px); see docs/real_data.md", file=sys.stderr)
        return 2
    try:  # every flag is an override, so the whole study is checked before any training
        seeds = _seeds(args)
        benches = {seed: load_bench_config(args.preset, [*_flag_overrides(args, seed), *args.overrides])
                   for seed in seeds}
    except (ValueError, FileNotFoundError) as err:
        print(f"occau bench: {err}", file=sys.stderr)
        return 2
    start = time.monotonic()

    def log(message: str) -> None:
        minutes, seconds = divmod(int(time.monotonic() - start), 60)
        print(f"[occau {minutes:3d}:{seconds:02d}] {message}", flush=True)

    try:
        if args.seeds is None:
            run_benchmark(benches[seeds[0]], args.out, log=log)
        else:
            run_draws(benches, args.out, log=log)
    except RecipeChangedError as err:
        print(f"occau bench: {err}", file=sys.stderr)
        return 2
    return 0


def _seeds(args: argparse.Namespace) -> list[int | None]:
    """The draws to run: ``--seeds`` (distinct integers, at least 2), else the one ``--seed`` (None: the preset's)."""
    if args.seeds is None:
        return [args.seed]
    if args.seed is not None:
        raise ValueError("give --seed or --seeds, not both")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers, got {args.seeds!r}") from None
    if len(seeds) < 2 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds needs at least 2 distinct draws for an interval, got {args.seeds!r}")
    return seeds


def _flag_overrides(args: argparse.Namespace, seed: int | None) -> list[str]:
    """The command's flags as preset overrides (``key=value``)."""
    overrides = []
    if args.dataset == "synth" and args.variant:
        overrides.append(f"data.dataset={args.variant}")
    if args.dataset != "synth":
        overrides += ["data.source=prepared", f"data.dataset={args.dataset}", f"data.root={args.data}"]
    if args.folds:
        overrides.append(f"folds=[{args.folds}]")
    if seed is not None:
        overrides += [f"data.seed={seed}", f"seed={seed}"]
    if args.pretrain_mae or args.dataset != "synth":
        overrides.append("mae=pretrain")
    return overrides
