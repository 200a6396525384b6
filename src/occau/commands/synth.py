"""``occau synth datasheet|render``: SynthFACS statistics and pictures, or its render cache."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("synth", help="SynthFACS: write a datasheet or render the image cache",
                              description=__doc__)
    sub = p.add_subparsers(dest="synth_command", metavar="ACTION", required=True)
    for name, text in (("datasheet", "write stats.json and the datasheet pictures to --out"),
                       ("render", "render every frame once into a .npy cache in --out")):
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("--variant", default="synth-bp4d", choices=["synth-bp4d", "synth-disfa"])
        q.add_argument("--preset", default="quick", help="smoke, quick or full")
        q.add_argument("--seed", type=int, default=None, help="override the preset's seed")
        q.add_argument("--out", required=True, help="output folder")
        if name == "render":
            q.add_argument("--workers", type=int, default=2, help="rendering processes")
        else:
            q.add_argument("--no-speed", action="store_true", help="skip the rendering-speed measurement")
        q.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from occau.data.synthfacs.dataset import render_cache, synthfacs_config

    config = synthfacs_config(args.preset, **({} if args.seed is None else {"seed": args.seed}))
    if args.synth_command == "render":
        path = render_cache(config, args.variant, args.out, workers=args.workers)
        print(f"[occau] SynthFACS cache: {path} ({config.n_frames} frames of {config.image_size} px)")
        return 0
    from occau.reports.datasheet import write_datasheet

    write_datasheet(args.variant, config, args.out, measure=not args.no_speed,
                    log=lambda msg: print(f"[occau] {msg}", flush=True))
    print(f"[occau] datasheet written to {args.out}")
    return 0
