"""``occau export onnx STUDENT OUT``: a student bundle as one ONNX graph, for ``occau detect --runtime onnx``.

The graph takes normalised images (B, 3, S, S) float32 and the token mask (B, L) bool (True = occluded) and returns
the AU probabilities (B, N); the batch size and the occlusion may differ from call to call. The bundle's metadata
(AUs, input size, patch size, normalisation, licence ...) goes into the model's metadata_props as JSON under
``occau``. After writing, ONNX Runtime runs a check batch and the command fails if any probability differs from
PyTorch's by more than 1e-4.

Needs the optional packages: pip install "occau[onnx]". Exit status: 0 written, 1 the bundle cannot be exported,
2 the onnx extra is missing.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("export", help="export a student bundle for other runtimes (ONNX)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    formats = p.add_subparsers(dest="format", metavar="FORMAT", required=True)
    onnx = formats.add_parser("onnx", help="encoder + readout + head as one ONNX graph (occau detect --runtime onnx)")
    onnx.add_argument("student", help="student bundle (.safetensors with encoder.* and student.*)")
    onnx.add_argument("out", help="output .onnx")
    onnx.add_argument("--opset", type=int, default=None,
                      help="ONNX opset (default 18, the exporter's own; lower ones go through a version converter)")
    onnx.set_defaults(handler=run_onnx)


def run_onnx(args: argparse.Namespace) -> int:
    from occau.checkpoints.io import CheckpointError
    from occau.inference.onnx_student import CHECK_ATOL, MissingExtraError, export_onnx

    try:
        path, diff = export_onnx(args.student, args.out, opset=args.opset)
    except MissingExtraError as err:
        print(f"occau export: {err}", file=sys.stderr)
        return 2
    except (CheckpointError, FileNotFoundError, KeyError, ValueError) as err:
        print(f"occau export: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path} (max |ONNX - PyTorch| = {diff:.1e} on the check batches, tolerance {CHECK_ATOL:g})")
    return 0
