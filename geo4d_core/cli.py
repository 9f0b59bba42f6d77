"""The `geo4d` command line.

Subcommands are plug-ins: every package registers its own under the `geo4d.commands` entry-point group
(see setup.py) with a function `register(subparsers) -> None` that adds one sub-parser and sets
`func=<callable(args) -> int>` as its default. `register` must import lightly; optional dependencies
(Drake, rclpy, ...) are imported only when the subcommand runs. This keeps dependencies one-way: the
core knows nothing about `sim` or `geo4d_ros`, yet `geo4d sim ...` works when they are installed.
"""

from __future__ import annotations

import argparse
import sys
from importlib.metadata import entry_points
from typing import Sequence

from geo4d_core import __version__

ENTRY_POINT_GROUP = "geo4d.commands"


class CommandError(RuntimeError):
    """An error a subcommand reports to the user as one clear line (no traceback), exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every registered subcommand attached."""
    parser = argparse.ArgumentParser(
        prog="geo4d",
        description="geo4d: geometry-aware 4D world model for robot manipulation.",
    )
    parser.add_argument("--version", action="version", version=f"geo4d {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            register = ep.load()
        except Exception as exc:  # a broken plug-in must not take the whole CLI down
            sub = subparsers.add_parser(ep.name, help=f"(unavailable: {exc})")
            sub.set_defaults(func=_unavailable(ep.name, exc))
            continue
        register(subparsers)
    return parser


def _unavailable(name: str, exc: Exception):
    def run(_args: argparse.Namespace) -> int:
        raise CommandError(f"'geo4d {name}' could not be loaded: {exc}")

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `geo4d` console script; returns the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args.func(args) or 0)
    except CommandError as exc:
        print(f"geo4d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"geo4d {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
