"""``occau evaluate``: any trained methods x any protocol conditions x any folds -> results.json, results.md, plots.

Methods are ``NAME=KIND:CHECKPOINT`` with KIND ``teacher`` (a ME-GraphAU teacher on the occluded face), ``student``
(a student bundle on the visible tokens) or ``recon`` (``recon:MAE+TEACHER``, reconstruct then the teacher);
``{fold}`` is replaced by each fold number, e.g.
``--method student=student:runs/quick/fold{fold}/student/student.safetensors``.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("evaluate", help="evaluate trained methods under occlusion conditions",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", action="append", required=True, metavar="NAME=KIND:CHECKPOINT",
                   help="a method to evaluate; KIND is teacher, student or recon (recon:MAE+TEACHER)")
    p.add_argument("--dataset", default=None,
                   help="synth-bp4d, synth-disfa, bp4d or disfa (default: read from --data's prepare.json, else "
                   "synth-bp4d)")
    p.add_argument("--preset", default="quick", help="SynthFACS preset of the data")
    p.add_argument("--data", default=None, help="prepared dataset folder (bp4d/disfa) or SynthFACS cache folder")
    p.add_argument("--folds", default="1", help="comma-separated folds, e.g. 1,2,3")
    p.add_argument("--conditions", default="all", help="comma-separated protocol conditions, or 'all'")
    p.add_argument("--fill", default="black", help="fill of occluded pixels: black, mean, noise, texture")
    p.add_argument("--patch-size", type=int, default=None,
                   help="token grid of the occlusion masks (default: the MAE's, else the standard grid of the crops)")
    p.add_argument("--stride", type=int, default=1, help="evaluate every n-th test frame")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="model arithmetic: fp32, or bf16/fp16 autocast (default fp32, as the committed reports)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mask-estimates", default="",
                   help="the unknown-occlusion axis: comma-separated estimates (learnt, colour, none) the methods "
                        "that take a mask are re-run with (default: the given mask only)")
    p.add_argument("--estimator", default=None,
                   help="occlusion estimator weights for the learnt estimate (default: the one shipped with occau)")
    p.add_argument("--check-teacher", default=None, metavar="BACKBONE",
                   help="compare the clean F1 of the method named 'teacher' with ME-GraphAU's published per-AU "
                        "numbers for BACKBONE (resnet50, swin_transformer_base); exit 1 outside the tolerance")
    p.add_argument("--out", required=True, help="output folder")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from occau.data.config import DataConfig
    from occau.evaluation.evaluate import EvalConfig, evaluate_fold, results_over_folds
    from occau.evaluation.methods import parse_spec
    from occau.occlusion import CONDITIONS
    from occau.reports.results import write_report

    specs = dict(_parse_method(m) for m in args.method)
    conditions = list(CONDITIONS) if args.conditions == "all" else args.conditions.split(",")
    try:
        for spec in specs.values():
            parse_spec(spec)
        args.dataset = resolve_dataset(args.dataset, args.data)
        unknown = sorted(set(conditions) - set(CONDITIONS))
        if unknown:
            raise ValueError(f"unknown conditions {unknown}; known: {list(CONDITIONS)}")
    except ValueError as err:
        print(f"occau evaluate: {err}", file=sys.stderr)
        return 2
    folds = [int(f) for f in args.folds.split(",")]
    missing = [path for spec in specs.values() for fold in folds
               for path in parse_spec(spec.replace("{fold}", str(fold)))[1].split("+") if not Path(path).is_file()]
    if missing:  # checked for every fold first: a missing file of fold 3 must not surface after folds 1-2 ran
        print(f"occau evaluate: checkpoint(s) not found: {', '.join(dict.fromkeys(missing))}", file=sys.stderr)
        return 2
    prepared = args.dataset in ("bp4d", "disfa")
    try:
        settings = EvalConfig(stride=args.stride, batch_size=args.batch_size, fill=args.fill, device=args.device,
                              precision=args.precision, estimator=args.estimator,
                              mask_estimates=tuple(e for e in args.mask_estimates.split(",") if e))
    except ValueError as err:
        print(f"occau evaluate: {err}", file=sys.stderr)
        return 2
    data = DataConfig(source="prepared" if prepared else "synthfacs", dataset=args.dataset, preset=args.preset,
                      root=args.data if prepared else None, cache_dir=None if prepared else args.data,
                      fold=folds[0], seed=args.seed, patch_size=args.patch_size)
    per_fold = {}
    for fold in folds:
        fold_specs = {name: spec.replace("{fold}", str(fold)) for name, spec in specs.items()}
        per_fold[fold] = evaluate_fold(fold_specs, replace(data, fold=fold), conditions, settings,
                                       timed=fold == folds[0])
    results = results_over_folds(per_fold, data, conditions, settings, preset=args.preset, methods=specs)
    md_path = write_report(results, args.out)
    print(f"results: {Path(args.out) / 'results.json'}\n         {md_path}")
    if args.check_teacher:
        return _check_teacher(results, args.check_teacher, Path(args.out))
    return 0


def _check_teacher(results: dict, backbone: str, out: Path) -> int:
    from occau.evaluation.published import check_teacher

    cell = results["results"].get("teacher", {}).get("clean")
    if cell is None:
        print("occau evaluate --check-teacher: needs --method teacher=... and the clean condition", file=sys.stderr)
        return 2
    check = check_teacher(cell["f1_per_au"], results["dataset"], backbone, tuple(results["aus"]))
    (out / "teacher_check.md").write_text(check.table() + "\n")
    print(check.table())
    return 0 if check.passed else 1


def resolve_dataset(dataset: str | None, data: str | None) -> str:
    """The dataset to evaluate on: a prepared folder names its own (and must agree with ``--dataset``); without one,
    SynthFACS. Without this, a prepared folder passed with no ``--dataset`` was read as a SynthFACS cache."""
    from pathlib import Path

    from occau.data.layout import INFO_FILE

    info = Path(data) / INFO_FILE if data else None
    if info is not None and info.is_file():
        import json

        prepared = json.loads(info.read_text())["dataset"]
        if prepared not in ("bp4d", "disfa"):
            raise ValueError(f"{info}: the folder holds {prepared!r}, which has no AU labels to evaluate against")
        if dataset not in (None, prepared):
            raise ValueError(f"--dataset {dataset} but {info} says the folder holds {prepared}")
        return prepared
    if dataset in ("bp4d", "disfa"):
        where = f"{data} has no {INFO_FILE}" if data else "--data is missing"
        raise ValueError(f"--dataset {dataset} needs --data DIR, a folder written by `occau prepare {dataset}` ({where})")
    return dataset or "synth-bp4d"


def _parse_method(text: str) -> tuple[str, str]:
    name, sep, spec = text.partition("=")
    if not sep or not name or not spec:
        raise SystemExit(f"occau evaluate: --method must be NAME=KIND:CHECKPOINT, got {text!r}")
    return name, spec
