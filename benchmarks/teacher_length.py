"""How long must the benchmark's ME-GraphAU teacher train? Decided on a fold's *validation* subjects.

The teacher is the KD target, the start of every student's graph head and the base of three baselines (teacher on
occluded faces, occlusion-augmented teacher, reconstruct-then-teacher), so a teacher that has not finished learning
makes every one of those comparisons unfair. This trains the preset's two teacher stages (stage 1: backbone + AU
nodes; stage 2: + edges, from stage 1) for longer than the preset and records the stage's own selection metric, the
validation F1 over clean faces after every epoch, so the length where the curve levels off can be read off.

    python benchmarks/teacher_length.py --seed 1 --stage1-epochs 8 --stage2-epochs 4 --out runs/teacher_length

``--seed`` is the SynthFACS draw (as ``occau bench --seed``); ``--bench-dir`` a benchmark folder of that draw whose
render cache is reused (optional). One JSON line per stage is appended to ``RESULTS/teacher_length.jsonl`` (default
``benchmarks/results``) and ``teacher_length_runs.md`` is rewritten. The test part is never read.
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from dataclasses import replace
from pathlib import Path

from occau.benchmark import BenchConfig, load_bench_config, stage_config
from occau.training.run import train_stage

RESULTS = Path(__file__).parent / "results"


def validation_curve(metrics_csv: Path, name: str) -> list[float]:
    """Validation F1 (%) after each epoch, from the stage's Lightning CSV log (logged under the stage's name)."""
    column = f"val/{name}/f1"
    with metrics_csv.open() as f:
        rows = [row for row in csv.DictReader(f) if row.get(column)]
    return [round(100 * float(row[column]), 1) for row in sorted(rows, key=lambda r: int(r["epoch"]))]


def train_teacher_stage(bench: BenchConfig, stage: str, epochs: int, init: dict[str, str], args: argparse.Namespace
                        ) -> tuple[Path, dict]:
    """Train one of the preset's teacher stages for ``epochs`` epochs; its exported weights and a result row."""
    config = stage_config(bench, stage, args.fold, init=init)
    config = replace(config, optim=replace(config.optim, epochs=epochs),
                     trainer=replace(config.trainer, progress_bar=False))
    out = args.out / f"seed{args.seed}_fold{args.fold}" / f"{stage}_{epochs}ep"
    start = time.perf_counter()
    exported = train_stage(config, out)
    curve = validation_curve(out / "logs" / "metrics.csv", config.name)
    row = {"preset": args.preset, "seed": args.seed, "fold": args.fold, "stage": stage, "epochs": epochs,
           "init": {k: Path(v).parent.name for k, v in init.items()}, "val_f1_per_epoch": curve,
           "best": max(curve), "seconds": round(time.perf_counter() - start)}
    print(json.dumps(row), flush=True)
    return next(iter(exported.values())), row


def write_table(log: Path) -> None:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    lines = ["| preset | draw | fold | stage | epochs | starts from | validation F1 after each epoch (%) | best | "
             "train s |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['preset']} | {r['seed']} | {r['fold']} | {r['stage']} | {r['epochs']} | "
              f"{', '.join(r['init'].values()) or '-'} | {', '.join(f'{v:.1f}' for v in r['val_f1_per_epoch'])} | "
              f"{r['best']:.1f} | {r['seconds']} |" for r in rows]
    log.with_name("teacher_length_runs.md").write_text(
        "# Teacher length runs (validation subjects)\n\nWritten by benchmarks/teacher_length.py; F1 (%) at 0.5, mean "
        "over the dataset's AUs, clean validation faces. The decision is read in teacher_length.md.\n\n"
        + "\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick", help="the benchmark preset whose teacher stages are trained")
    parser.add_argument("--seed", type=int, default=0, help="the SynthFACS draw")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--stage1-epochs", type=int, default=8)
    parser.add_argument("--stage2-epochs", type=int, default=4)
    parser.add_argument("--bench-dir", type=Path, default=None, help="a benchmark folder of the draw (render cache)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the .jsonl and .md tables go")
    parser.add_argument("--out", type=Path, default=Path("runs/teacher_length"))
    args = parser.parse_args(argv)
    args.results.mkdir(parents=True, exist_ok=True)
    log = args.results / "teacher_length.jsonl"
    bench = load_bench_config(args.preset, [f"data.seed={args.seed}", f"seed={args.seed}"])  # as `occau bench --seed`
    if args.bench_dir is not None:
        bench.data["cache_dir"] = str(args.bench_dir / "data")
    stage1, row1 = train_teacher_stage(bench, "teacher_stage1", args.stage1_epochs, {}, args)
    _, row2 = train_teacher_stage(bench, "teacher_stage2", args.stage2_epochs, {"stage1": str(stage1)}, args)
    with log.open("a") as f:
        f.writelines(json.dumps(row) + "\n" for row in (row1, row2))
    write_table(log)


if __name__ == "__main__":
    main()
