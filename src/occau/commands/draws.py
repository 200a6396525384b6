"""``occau draws RESULTS.json ... --out DIR``: one study report from SynthFACS draws run apart.

``occau bench synth --seeds 0,1,2`` writes the report over draws itself. Draws that ran in separate invocations, on
several machines, or whose run folders are gone, are combined here from their ``OUT/seed<s>/report/results.json``
files alone, into the same report (draws.md, draws.json, paired_differences.png). A draw given twice, a file that
cannot be read, and draws of another dataset or preset are refused, and nothing is written then.
"""

from __future__ import annotations

import argparse
import sys


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("draws", help="one report over draws from their results.json files",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="each draw's results.json (OUT/seed<s>/report/results.json)")
    p.add_argument("--out", required=True, help="folder for draws.md, draws.json and paired_differences.png")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from occau.reports.draws import load_draws, write_draws_report

    try:
        per_draw = load_draws(args.results)
    except ValueError as err:
        print(f"occau draws: {err}", file=sys.stderr)
        return 2
    print(write_draws_report(per_draw, args.out))
    return 0
