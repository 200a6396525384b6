"""``occau detect INPUT... --checkpoint CKPT --out results.csv``: AUs and their visibility in photos and videos."""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "detect", help="AU probabilities, presence and visibility for faces in images, folders, globs and videos",
        description=__doc__ + "\n\nColumns and caveats: docs/detect.md. Inputs that fail are listed in "
        "<out stem>.failures.csv and on stderr; the others go on.\n\nExit status: 0 all inputs done, "
        "3 some inputs failed, 1 no face row at all, 2 bad arguments or checkpoint (or --runtime onnx without "
        "the onnx extra).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image or video files, folders, or quoted globs")
    p.add_argument("--checkpoint", required=True,
                   help="student bundle (.safetensors with encoder.* and student.*); with --runtime onnx the .onnx "
                        "file `occau export onnx` wrote from it")
    p.add_argument("--runtime", choices=["torch", "onnx"], default="torch",
                   help="run the model in PyTorch, or the exported .onnx with ONNX Runtime (CPU, fp32; needs "
                        'pip install "occau[onnx]") (default torch)')
    p.add_argument("--out", required=True, help="CSV to write, one row per face per frame, written as it goes")
    p.add_argument("--occlusion", choices=["none", "auto", "learnt", "colour"], default="none",
                   help="where no --masks mask is given, what counts as covered: 'learnt' estimates it with the "
                        "occlusion estimator (--estimator, default the shipped one), 'colour' from skin colour, "
                        "'auto' with whichever measured best (docs/detect.md), 'none' treats the face as uncovered "
                        "(crop parts outside the picture always count as covered) (default none)")
    p.add_argument("--estimator", default=None,
                   help="occlusion estimator weights for --occlusion learnt/auto (from `occau train "
                        "occlusion/synthfacs_photos.yaml`; default: the one shipped with occau)")
    p.add_argument("--masks", default=None,
                   help="occlusion masks (white = covered): one image for a single input, or a folder with a mask "
                        "per input named like it (foo.jpg -> foo.png or foo_mask.png; videos -> a mask video)")
    p.add_argument("--batch-size", type=int, default=16, help="faces per model batch (default 16)")
    p.add_argument("--skip-frames", type=int, default=0,
                   help="in videos, process one frame then skip this many (default 0: every frame)")
    p.add_argument("--detect-every", type=int, default=1, metavar="K",
                   help="in videos, run the face detector on every K-th processed frame, and wherever tracking "
                        "loses a face; in between, follow the landmarks by optical flow (rows tracked = 1) "
                        "(default 1: detect on every frame)")
    p.add_argument("--threshold", type=float, default=0.5, help="probability at which AUxx_c is 1 (default 0.5)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                   help="model arithmetic: fp32, or bf16/fp16 autocast (GPUs; bf16 also on recent CPUs) (default fp32)")
    p.add_argument("--overlay", default=None, metavar="DIR",
                   help="write pictures here: <name>_overlay.png; for videos <name>_overlay.mp4 and <name>_aus.png")
    p.add_argument("--max-gap", type=int, default=15,
                   help="in videos, reuse the last detected face for up to this many frames without a detection")
    p.add_argument("--max-pixels", type=int, default=None, help="refuse images larger than this (default 100 MP)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (and ONNX Runtime's intra-op threads)")
    p.add_argument("--overlap", choices=["auto", "on", "off"], default="auto",
                   help="run the model in its own thread while the next frames are detected: auto = on a GPU only "
                        "(on a CPU torch already uses every core; measured no faster) (default auto)")
    p.add_argument("--quiet", action="store_true", help="no progress bar and no per-input messages")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import torch

    from occau.checkpoints.io import CheckpointError
    from occau.data.images import MAX_PIXELS
    from occau.inference import Detector, failures_path
    from occau.inference.onnx_student import MissingExtraError

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.batch_size < 1 or args.skip_frames < 0 or args.detect_every < 1:
        print("occau detect: --batch-size and --detect-every must be >= 1 and --skip-frames >= 0", file=sys.stderr)
        return 2
    try:
        detector = Detector(args.checkpoint, device=args.device, runtime=args.runtime, threshold=args.threshold,
                            occlusion=args.occlusion, estimator=args.estimator, precision=args.precision,
                            max_gap=args.max_gap, max_pixels=args.max_pixels or MAX_PIXELS)
    except MissingExtraError as err:
        print(f"occau detect: {err}", file=sys.stderr)
        return 2
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"occau detect: cannot load checkpoint: {err}", file=sys.stderr)
        return 2
    log = (lambda msg: None) if args.quiet else (lambda msg: print(f"[occau detect] {msg}", file=sys.stderr, flush=True))
    try:
        df = detector.detect(args.inputs, batch_size=args.batch_size, skip_frames=args.skip_frames, masks=args.masks,
                             out=args.out, overlay_dir=args.overlay, log=log, detect_every=args.detect_every,
                             progress=not args.quiet, overlap={"auto": None, "on": True, "off": False}[args.overlap])
    except (FileNotFoundError, ValueError) as err:
        print(f"occau detect: {err}", file=sys.stderr)
        return 2
    failures = df.attrs["failures"]
    print(f"occau detect: {len(df)} face row(s) from {df['input'].nunique()} input(s) -> {args.out}"
          + (f"; {len(failures)} failure(s) -> {failures_path(args.out)}" if failures else ""), file=sys.stderr)
    return 1 if len(df) == 0 else 3 if failures else 0
