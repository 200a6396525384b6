"""``occau prepare {bp4d,disfa,faces} --root RAW --out DIR``: detect, align and crop every labelled frame (or, for
``faces``, one face per photo of an unlabelled collection, for MAE pretraining)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="turn a BP4D/DISFA download (or a folder of face photos) into aligned face crops + manifest (resumable)",
        description="Detect and align the face of every labelled frame (yuface, MTCNN fallback), write crops, "
        "manifest.jsonl, failures.tsv and summary.json. Rerun the same command to resume. `faces`: an unlabelled "
        "folder tree of photos (one crop per photo, the largest face) for MAE pretraining (data.root of an MAE stage).",
    )
    p.add_argument("dataset", choices=("bp4d", "disfa", "faces"))
    p.add_argument(
        "--root",
        type=Path,
        required=True,
        help="the provider's download: BP4D with AUCoding/AU_OCC, DISFA with ActionUnit_Labels and Videos_LeftCamera; "
        "faces: a folder tree of photos",
    )
    p.add_argument("--out", type=Path, required=True, help="output folder (created; reused to resume)")
    p.add_argument(
        "--images",
        type=Path,
        default=None,
        help="folder holding <Subject>/<Task>/<frame>.jpg (BP4D) or, with --aligned, existing crops "
        "(BP4D <S>/<T>/<frame>.jpg, DISFA <SN>/<t>.png); default: looked up under --root",
    )
    p.add_argument(
        "--lists",
        type=Path,
        default=None,
        help="take labels from ME-GraphAU list files (data/<DS>/list) instead of the raw label files",
    )
    p.add_argument("--aligned", action="store_true", help="inputs are already face crops: resize, no detection")
    p.add_argument("--size", type=int, default=224, help="crop side in pixels (default 224)")
    p.add_argument("--format", dest="image_format", choices=("jpg", "png"), default="jpg")
    p.add_argument(
        "--no-face",
        dest="no_face",
        choices=("neighbour", "skip"),
        default="neighbour",
        help="frames without a face: reuse the previous face's transform in the sequence, or skip",
    )
    p.add_argument(
        "--detectors",
        default=None,
        help="comma-separated backends in order of use (default: yuface,mtcnn as installed)",
    )
    p.add_argument("--min-score", type=float, default=0.5)
    p.add_argument("--subjects", nargs="+", default=None, help="only these subjects (default: all)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    if args.dataset == "faces":
        return run_faces(args)
    from occau.data.prepare import PrepareConfig, PrepareError, prepare

    config = PrepareConfig(
        dataset=args.dataset,
        root=args.root,
        out=args.out,
        images=args.images,
        lists=args.lists,
        subjects=tuple(args.subjects) if args.subjects else None,
        size=args.size,
        image_format=args.image_format,
        aligned=args.aligned,
        no_face=args.no_face,
        backends=tuple(args.detectors.split(",")) if args.detectors else None,
        min_score=args.min_score,
        workers=args.workers,
        progress=args.progress,
    )
    try:
        result = prepare(config)
    except PrepareError as e:
        print(f"occau prepare: error: {e}", file=sys.stderr)
        return 1
    s = result.summary
    unknown = s["labels_all_frames"]["per_au"]
    print(f"{result.frames} crops of {s['frames_labelled']} labelled frames in {result.out}")
    print(f"frames by status: {s['status']}; by detector: {s['detector']}")
    print(
        f"unknown labels (kept as unknown, per AU): {s['unknown_labels']} "
        + str({au: c["unknown"] for au, c in unknown.items() if c["unknown"]})
    )
    return 0


def run_faces(args: argparse.Namespace) -> int:
    from occau.data.faces import FacesConfig, prepare_faces
    from occau.data.prepare import PrepareError

    unused = [flag for flag, value in (("--images", args.images), ("--lists", args.lists), ("--subjects", args.subjects))
              if value is not None]  # fmt: skip
    if unused:
        print(f"occau prepare faces: error: {', '.join(unused)} apply to bp4d/disfa only", file=sys.stderr)
        return 2
    config = FacesConfig(root=args.root, out=args.out, size=args.size, image_format=args.image_format,
                         aligned=args.aligned, min_score=args.min_score, progress=args.progress,
                         backends=tuple(args.detectors.split(",")) if args.detectors else None)
    try:
        s = prepare_faces(config)
    except PrepareError as e:
        print(f"occau prepare: error: {e}", file=sys.stderr)
        return 1
    print(f"{s['frames_in_manifest']} face crops of {s['photos']} photos in {args.out}; by status: {s['status']}")
    print(f"photos without a face are listed in {args.out / 'failures.tsv'}")
    return 0
