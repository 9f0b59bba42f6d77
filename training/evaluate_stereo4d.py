"""Evaluate stereo 4D world-model checkpoints on held-out camera views (the paper's Table 1).

    python training/evaluate_stereo4d.py --checkpoint models/spatula_tiny --data data/spatula \
        [--checkpoint models/spatula_tiny_no_mv --name ours --name "w/o MV attn"] \
        [--episodes episode_000005.zarr ...] [--pairs 4] [--times 3] [--steps 25] [--seed 0] \
        [--cameras test] [--device cpu] [--out results.json] [--markdown table.md]

For every checkpoint: the held-out episodes are `--episodes` (folder names under `--data`) when given,
else the `heldout_episodes` list of the checkpoint's `data_recipe.json` when it has one, else every
episode under `--data`. On each episode, `--pairs` ordered pairs of test cameras and `--times`
condition times per pair are scored (see `training/evaluation.py` for exactly what each metric
compares). Prints one Markdown table row per checkpoint, writes all per-sample records and means to
`--out` (JSON) and, when asked, the table to `--markdown`. Exit status 0 on success, 2 on bad input
(one clear line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

from geo4d_core.atomic import write_text_atomic

RECIPE_NAME = "data_recipe.json"  # written by the training script next to the checkpoint's weights
PROG = "evaluate_stereo4d"


class EvaluationError(RuntimeError):
    """Bad input reported as one line (exit status 2)."""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", action="append", required=True, type=Path,
                   help="world-model folder (save_pretrained); repeat to compare several checkpoints")
    p.add_argument("--name", action="append", default=None,
                   help="table row name of each --checkpoint, in order (default: the folder name)")
    p.add_argument("--data", required=True, type=Path, help="dataset folder holding the episode folders (*.zarr)")
    p.add_argument("--episodes", nargs="+", default=None, metavar="NAME",
                   help="episode folder names under --data (default: data_recipe.json's heldout_episodes, "
                        "else every episode)")
    p.add_argument("--pairs", type=int, default=4, help="ordered test-camera pairs (n, m) per episode (default 4)")
    p.add_argument("--times", type=int, default=3, help="condition times per pair, spread over the episode (default 3)")
    p.add_argument("--steps", type=int, default=25, help="denoising steps per prediction (default 25)")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair choice and of the sampling (default 0)")
    p.add_argument("--cameras", default="test", choices=["test", "train", "all"],
                   help="cameras the pairs are drawn from (default: test, the held-out views)")
    p.add_argument("--device", default="cpu", help="torch device of the model (default cpu)")
    p.add_argument("--out", type=Path, default=Path("results.json"), help="JSON output (default results.json)")
    p.add_argument("--markdown", type=Path, default=None, help="also write the Markdown table here")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _names(args: argparse.Namespace) -> list[str]:
    if args.name is None:
        names = [c.resolve().name or str(c) for c in args.checkpoint]
    elif len(args.name) != len(args.checkpoint):
        raise EvaluationError(f"--name given {len(args.name)} times but --checkpoint {len(args.checkpoint)} times; "
                              "give one name per checkpoint or none")
    else:
        names = list(args.name)
    if len(set(names)) != len(names):
        raise EvaluationError(f"row names {names} are not unique; pass --name for each checkpoint")
    return names


def _check_checkpoint(path: Path) -> None:
    if not path.exists():
        raise EvaluationError(f"--checkpoint {path}: does not exist")
    if not path.is_dir():
        raise EvaluationError(f"--checkpoint {path}: not a directory (expected a world-model checkpoint folder)")


def _resolve(data: Path, name: str, source: str) -> Path:
    path = data / name
    if not path.is_dir() and not name.endswith(".zarr") and (data / f"{name}.zarr").is_dir():
        path = data / f"{name}.zarr"
    if not path.is_dir():
        available = sorted(p.name for p in data.iterdir() if p.is_dir()) if data.is_dir() else []
        shown = ", ".join(available[:8]) + (", ..." if len(available) > 8 else "")
        raise EvaluationError(f"{source}: episode {name!r} not found under {data} (it has: {shown or 'nothing'})")
    return path


def held_out_episodes(checkpoint: Path, data: Path, names: Sequence[str] | None) -> tuple[list[Path], str]:
    """The episodes to evaluate a checkpoint on and where the list came from."""
    from geo4d_core.data.episode import list_episodes

    if not data.is_dir():
        raise EvaluationError(f"--data {data}: dataset directory does not exist or is not a directory")
    if names:
        return [_resolve(data, n, "--episodes") for n in names], "--episodes"
    recipe = checkpoint / RECIPE_NAME
    if recipe.is_file():
        try:
            held = json.loads(recipe.read_text()).get("heldout_episodes")
        except (json.JSONDecodeError, AttributeError) as err:
            raise EvaluationError(f"{recipe}: not a JSON object ({err})") from None
        if held is not None:
            if not isinstance(held, list) or not all(isinstance(n, str) for n in held):
                raise EvaluationError(f"{recipe}: heldout_episodes must be a list of episode folder names")
            if not held:
                raise EvaluationError(f"{recipe}: heldout_episodes is empty; pass --episodes")
            return [_resolve(data, n, str(recipe)) for n in held], f"{RECIPE_NAME} heldout_episodes"
    episodes = list_episodes(data)
    if not episodes:
        raise EvaluationError(f"--data {data}: no finished geo4d episodes in this folder")
    return episodes, "every episode under --data"


def run(args: argparse.Namespace) -> int:
    if args.pairs < 1 or args.times < 1 or args.steps < 1:
        raise EvaluationError("--pairs, --times and --steps must be >= 1, "
                              f"got {args.pairs}, {args.times}, {args.steps}")
    names = _names(args)
    for ckpt in args.checkpoint:  # fail on any bad path before importing torch or loading the first model
        _check_checkpoint(ckpt)

    from geo4d_core.data.episode import EpisodeError
    from geo4d_core.model.world_model import WorldModel
    from training.evaluation import TABLE_COLUMNS, evaluate_world_model, format_table

    plans = [(name, ckpt, *held_out_episodes(ckpt, args.data, args.episodes))
             for name, ckpt in zip(names, args.checkpoint)]
    results, report = {}, {}
    for name, ckpt, episodes, source in plans:
        try:
            model = WorldModel.from_pretrained(ckpt, device=args.device)
        except (FileNotFoundError, ValueError, OSError, RuntimeError) as err:
            raise EvaluationError(f"--checkpoint {ckpt}: {err}") from None
        print(f"{PROG}: {name}: {len(episodes)} episodes ({source}), {args.pairs} pairs x {args.times} times, "
              f"{args.steps} steps", file=sys.stderr)
        try:
            result = evaluate_world_model(model, episodes, cameras=args.cameras, pairs_per_episode=args.pairs,
                                          times_per_pair=args.times, steps=args.steps, seed=args.seed,
                                          progress=not args.no_progress)
        except (ValueError, EpisodeError) as err:
            raise EvaluationError(str(err)) from None
        del model
        results[name] = result
        report[name] = {"checkpoint": str(ckpt), "episodes_from": source, **result.to_dict()}
    episode_sets = {name: tuple(r.episodes) for name, r in results.items()}
    notes = [n for r in results.values() for n in dict.fromkeys(r.notes)]
    if len(set(episode_sets.values())) > 1:
        notes.append("the checkpoints were evaluated on different episode sets (their data_recipe.json "
                     "heldout_episodes differ); pass --episodes to compare them on the same ones")
    table = format_table(results)
    out = {
        "data": str(args.data),
        "columns": TABLE_COLUMNS,
        "notes": list(dict.fromkeys(notes)),
        "models": report,
    }
    write_text_atomic(args.out, json.dumps(out, indent=2, ensure_ascii=False, allow_nan=False) + "\n")
    if args.markdown is not None:
        write_text_atomic(args.markdown, table)
    print(table, end="")
    for note in out["notes"]:
        print(f"note: {note}")
    print(f"{PROG}: wrote {args.out}" + (f" and {args.markdown}" if args.markdown else ""), file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default sys.argv[1:]), evaluate, print the table; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except EvaluationError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    # Run as `python training/evaluate_stereo4d.py`: the repo root makes `training` importable even
    # without the editable install.
    _root = str(Path(__file__).resolve().parent.parent)
    if _root not in sys.path:
        sys.path.insert(0, _root)
    sys.exit(main())
