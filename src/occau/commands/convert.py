"""``occau convert {mae,megraphau} SRC DST``: import a foreign checkpoint into occau's self-describing format.

Loading never runs pickled code (``torch.load(weights_only=True)`` or safetensors). A file that does not fit the
architecture exits with status 1 and a listing of every missing key, unexpected key and shape mismatch.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="import official MAE / ME-GraphAU weights into occau checkpoints",
                              description=__doc__)
    kinds = p.add_subparsers(dest="kind", metavar="KIND", required=True)
    mae = kinds.add_parser("mae", help="official mae_pretrain/mae_visualize .pth, or timm MAE weights")
    mae.add_argument("src")
    mae.add_argument("dst", help="output .safetensors")
    mae.add_argument("--arch", default="vit_base_patch16",
                     help="vit_base_patch16, vit_large_patch16, vit_huge_patch14 (with or without 'mae_')")
    mae.set_defaults(handler=run_mae)
    meg = kinds.add_parser("megraphau", help="official ME-GraphAU .pth (stage 1 or 2, with or without 'module.')")
    meg.add_argument("src")
    meg.add_argument("dst", help="output .safetensors")
    meg.add_argument("--backbone", required=True,
                     help="resnet18/34/50/101, swin_transformer_tiny/small/base")
    meg.add_argument("--num-aus", type=int, required=True, help="12 for BP4D, 8 for DISFA")
    meg.add_argument("--stage", type=int, default=2, choices=[1, 2])
    meg.add_argument("--neighbor-num", type=int, default=None, help="stage-1 graph K (default 4 for 12 AUs, else 3)")
    meg.set_defaults(handler=run_megraphau)
    ship = kinds.add_parser("ship-mae", help="put a pretrained SynthFACS MAE (mae-pool preset) into the package "
                                             "as the MAE every SynthFACS benchmark starts from")
    ship.add_argument("src", help="mae.safetensors of `occau train configs/mae/synthfacs_mae.yaml`")
    ship.add_argument("dst", nargs="?", default=None, help="default: src/occau/weights/ of this checkout")
    ship.set_defaults(handler=run_ship_mae)
    est = kinds.add_parser("ship-occlusion", help="put a trained occlusion estimator into the package, with its "
                                                 "measured token precision / recall")
    est.add_argument("src", help="occlusion.safetensors of `occau train occlusion/synthfacs_photos.yaml`")
    est.add_argument("--measured", required=True,
                     help="the .json benchmarks/detect_occlusion.py --estimate learnt --checkpoint SRC wrote")
    est.add_argument("dst", nargs="?", default=None, help="default: src/occau/weights/ of this checkout")
    est.set_defaults(handler=run_ship_occlusion)


def run_mae(args: argparse.Namespace) -> int:
    from occau.checkpoints.mae import convert_mae

    return _convert(lambda: convert_mae(args.src, args.dst, args.arch))


def run_ship_mae(args: argparse.Namespace) -> int:
    """Ship the MAE, and draw its AU-probe curve next to the source file (``probe.png``)."""
    from occau.checkpoints.io import read_meta
    from occau.checkpoints.shipped import ship_mae
    from occau.reports.plots import plot_probe_curve

    status = _convert(lambda: ship_mae(args.src, args.dst))
    if status == 0:
        png = plot_probe_curve(read_meta(args.src)["probe"], Path(args.src).with_name("probe.png"),
                               title="SynthFACS MAE: AU probe over pretraining")
        print(f"probe curve: {png}")
    return status


def run_ship_occlusion(args: argparse.Namespace) -> int:
    from occau.checkpoints.shipped import ship_occlusion_estimator

    return _convert(lambda: ship_occlusion_estimator(args.src, args.measured, args.dst))


def run_megraphau(args: argparse.Namespace) -> int:
    from occau.checkpoints.megraphau import convert_megraphau

    return _convert(lambda: convert_megraphau(args.src, args.dst, args.backbone, args.num_aus, args.stage,
                                              args.neighbor_num))


def _convert(job) -> int:
    from occau.checkpoints.io import CheckpointError

    try:
        path = job()
    except (CheckpointError, ValueError) as err:
        print(f"occau convert: {err}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0
