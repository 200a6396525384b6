"""The ``occau`` command: one sub-command per job, each defined in ``occau.commands.<name>``.

Every command module exposes ``register(subparsers)``, which adds its parser and sets ``handler`` to a function
taking the parsed arguments and returning an exit status. Heavy imports live inside handlers so ``occau --help``
stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from occau import __version__, commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="occau", description="occau: occlusion-robust facial action unit recognition")
    parser.add_argument("--version", action="version", version=f"occau {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"occau.commands.{info.name}")
        module.register(subparsers)
    return parser


def parse(argv: list[str] | None = None, parser: argparse.ArgumentParser | None = None) -> argparse.Namespace:
    """Parse a command line as ``main`` does (exits with status 2 on a bad flag); the docs' commands are checked with
    it."""
    parser = parser or build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:  # argparse puts trailing positionals after options here; only `key=value` overrides may land here
        if not hasattr(args, "overrides") or any(e.startswith("-") or "=" not in e for e in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        args.overrides = [*args.overrides, *extra]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(argv, parser)
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    return int(args.handler(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
