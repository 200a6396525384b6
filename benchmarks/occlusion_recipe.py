"""Which recipe for the occlusion estimator? Decided on the *selection* faces only, never on the faces that measure it.

Each variant is the shipped estimator's recipe (``occlusion/synthfacs_photos.yaml``) with a few overrides, trained by
the same code as ``occau train`` (``train_stage``). It is then judged on what selection may look at:

- its own validation score: token F1 (and precision, recall, false cover, the chosen threshold) over fold 1's
  SynthFACS validation subjects plus draws of Grace Hopper's photograph (``selection.json``), the metric that picks
  the epoch and, here, the recipe;
- ``benchmarks/detect_occlusion.py``'s ``measure`` on Grace Hopper and fresh SynthFACS identities, for the rows a
  user feels (the clean false-positive rate; mask, sunglasses, hand).

The cameraman photograph, the face that measures the shipped estimator (docs/detect.md), is not read here. The
shipped weights are the ``shipped`` row (scores from their own metadata and ``measure``).

    python benchmarks/occlusion_recipe.py --variants "clean_grey=loss.clean=0.3 loss.grey=0.3" --out runs/occ_recipe

One JSON line per variant is appended to ``RESULTS/occlusion_recipe.jsonl`` (default ``benchmarks/results``) and the
table ``occlusion_recipe.md`` is rewritten.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from occau.checkpoints.io import read_meta
from occau.checkpoints.shipped import OCCLUSION_ESTIMATOR, shipped_weights
from occau.training.config import load_config
from occau.training.run import train_stage

sys.path.insert(0, str(Path(__file__).parent))
from detect_occlusion import face_sets, measure  # noqa: E402  (the same scoring as the shipped table)

RESULTS = Path(__file__).parent / "results"
RECIPE = "occlusion/synthfacs_photos.yaml"
SELECTION_FACES = ("grace_hopper", "synth")  # never "cameraman": it measures the result
ROWS = ("clean", "mask", "sunglasses", "hand")


def train_variant(name: str, overrides: list[str], out: Path) -> tuple[Path, dict]:
    """Train (or reuse) one variant -> (weights, its validation selection)."""
    folder = out / name
    weights = folder / "occlusion.safetensors"
    if not weights.is_file():
        train_stage(load_config(RECIPE, overrides), folder)
    selection = json.loads((folder / "selection.json").read_text())["occlusion"]
    return weights, {**selection["val_token"], "epoch": selection["epoch"]}


def score(weights: Path, faces: dict, draws: int = 4) -> dict[str, dict[str, float]]:
    """Per selection face set and row: precision, recall and the share of face tokens wrongly covered."""
    out = {}
    for face_set in SELECTION_FACES:
        rows = measure(faces[face_set], 16, "learnt", str(weights), draws=draws)
        out[face_set] = {r["occluder"]: {k: r[k] for k in ("precision", "recall", "false_cover")}
                         for r in rows if r["occluder"] in ROWS and r["fill"] == "-"}
    return out


def write_table(log: Path) -> None:
    rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    lines = ["# Occlusion estimator recipes (selection faces only)", "",
             "Written by benchmarks/occlusion_recipe.py. *val*: the selection metric (token F1 over fold 1's SynthFACS "
             "validation subjects and Grace Hopper draws) with the threshold chosen with it. Then per face set "
             "(GH = Grace Hopper, SF = fresh SynthFACS identities): clean = share of face tokens wrongly called "
             "covered; occluders as precision / recall. The cameraman, which measures the shipped estimator, is not "
             "scored here.", "",
             "| variant | overrides | val F1 | val P / R | threshold | GH clean | GH mask | GH sunglasses | GH hand | "
             "SF clean | SF mask | SF sunglasses | SF hand |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cells = []
        for face_set in SELECTION_FACES:
            s = r["scores"][face_set]
            cells.append(f"{100 * s['clean']['false_cover']:.1f} %")
            cells += [f"{s[k]['precision']:.2f} / {s[k]['recall']:.2f}" for k in ROWS[1:]]
        v = r["val"]
        lines.append(f"| {r['variant']} | `{' '.join(r['overrides']) or '-'}` | {v['f1']:.3f} | "
                     f"{v['precision']:.2f} / {v['recall']:.2f} | {v['threshold']} | " + " | ".join(cells) + " |")
    log.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", nargs="*", default=[],
                        help='NAME=OVERRIDES, e.g. "clean_grey=loss.clean=0.3 loss.grey=0.3"')
    parser.add_argument("--shipped", action="store_true", help="add the shipped weights' row")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=Path("runs/occlusion_recipe"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--synth", type=int, default=12, help="fresh SynthFACS faces scored")
    parser.add_argument("--draws", type=int, default=4, help="draws of every occluder per face")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    args.results.mkdir(parents=True, exist_ok=True)
    log = args.results / "occlusion_recipe.jsonl"
    faces = face_sets(224, args.synth)
    runs: list[tuple[str, list[str]]] = [("shipped", [])] if args.shipped else []
    runs += [(v.partition("=")[0], v.partition("=")[2].split()) for v in args.variants]
    for name, overrides in runs:
        start = time.perf_counter()
        if name == "shipped":
            weights = shipped_weights(OCCLUSION_ESTIMATOR)
            selection = read_meta(weights)["selection"]
            val = {**selection["val_token"], "epoch": selection["epoch"]}
        else:
            weights, val = train_variant(name, overrides, args.out)
        row = {"variant": name, "overrides": overrides, "val": val, "scores": score(weights, faces, args.draws),
               "seconds": round(time.perf_counter() - start)}
        with log.open("a") as f:
            f.write(json.dumps(row) + "\n")
        write_table(log)
        print(f"{name}: val F1 {val['f1']:.3f}; table: {log.with_suffix('.md')}", flush=True)


if __name__ == "__main__":
    main()
