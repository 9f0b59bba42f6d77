"""`geo4d episode info|check PATH`: inspect and verify episodes in the geo4d episode format."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `episode` subcommand to the `geo4d` CLI."""
    p = subparsers.add_parser("episode", help="inspect or verify recorded episodes (zarr)")
    sub = p.add_subparsers(dest="episode_command", metavar="ACTION", required=True)
    info = sub.add_parser("info", help="print metadata, cameras and frame count of episodes")
    info.add_argument("paths", nargs="+", type=Path, help="episode folders (*.zarr) or dataset folders")
    info.set_defaults(func=_info)
    check = sub.add_parser("check", help="verify that every chunk of every array exists and decodes")
    check.add_argument("paths", nargs="+", type=Path, help="episode folders (*.zarr) or dataset folders")
    check.set_defaults(func=_check)


def _episode_paths(paths: list[Path]) -> list[Path]:
    from geo4d_core.cli import CommandError
    from geo4d_core.data import list_episodes

    out: list[Path] = []
    for path in paths:
        if not path.exists():
            raise CommandError(f"{path}: no such file or folder")
        if path.suffix in (".zarr", ".partial") or (path / "zarr.json").exists():
            out.append(path)
        else:
            found = list_episodes(path)
            if not found:
                raise CommandError(f"{path}: no complete episodes (*.zarr) in this folder")
            out.extend(found)
    return out


def _info(args: argparse.Namespace) -> int:
    from geo4d_core.cli import CommandError
    from geo4d_core.data import EpisodeError, EpisodeReader

    for path in _episode_paths(args.paths):
        try:
            reader = EpisodeReader(path)
        except EpisodeError as exc:
            raise CommandError(str(exc)) from exc
        meta = reader.metadata
        print(f"{path}: task={meta.task} seed={meta.seed} success={meta.success} frames={reader.num_frames} "
              f"fps={meta.fps} arms={meta.num_arms}")
        for name, cam in reader.cameras.items():
            print(f"  {name}: {cam.split:5s} {cam.height}x{cam.width} fx={cam.K[0, 0]:.1f} "
                  f"p_WC=({cam.X_WC[0, 3]:+.3f}, {cam.X_WC[1, 3]:+.3f}, {cam.X_WC[2, 3]:+.3f}) m")
    return 0


def _check(args: argparse.Namespace) -> int:
    from geo4d_core.data import EpisodeError, EpisodeReader

    bad = 0
    paths = _episode_paths(args.paths)
    for path in paths:
        try:
            EpisodeReader(path).verify(progress=len(paths) == 1)
            print(f"ok       {path}")
        except EpisodeError as exc:
            bad += 1
            print(f"CORRUPT  {path}: {exc}")
    print(f"{len(paths) - bad} ok, {bad} bad")
    return 1 if bad else 0
