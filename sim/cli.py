"""`geo4d sim ...`: Drake simulation commands (needs the `[sim]` extra)."""

from __future__ import annotations

import argparse
from pathlib import Path


def _shard(text: str) -> tuple[int, int]:
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected k/n such as 0/4, got {text!r}") from exc
    if not (n >= 1 and 0 <= k < n):
        raise argparse.ArgumentTypeError(f"shard k/n needs 0 <= k < n, got {text!r}")
    return k, n


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sim` subcommand to the `geo4d` CLI (imports pydrake only when run)."""
    p = subparsers.add_parser("sim", help="Drake simulation: dataset generation, montages")
    sub = p.add_subparsers(dest="sim_command", metavar="ACTION", required=True)

    gen = sub.add_parser("generate", help="generate a multi-view RGB-D dataset of scripted demonstrations",
                         description="Generate a dataset of successful scripted demonstrations of a task, "
                                     "rendered from randomly sampled cameras (resumable, shardable).")
    gen.add_argument("--task", required=True, help="task name, e.g. PutSpatulaOnTable")
    gen.add_argument("--episodes", type=int, default=None,
                     help="successful episodes to generate (default: the paper's 25 / 22 / 20)")
    gen.add_argument("--out", type=Path, required=True, help="dataset folder")
    gen.add_argument("--seed", type=int, default=0, help="dataset seed (default: %(default)s)")
    gen.add_argument("--cameras", type=int, default=16, help="cameras per episode (default: %(default)s)")
    gen.add_argument("--test-cameras", type=int, default=4, help="of which test cameras (default: %(default)s)")
    gen.add_argument("--height", type=int, default=256, help="image height (default: %(default)s)")
    gen.add_argument("--width", type=int, default=320, help="image width (default: %(default)s)")
    gen.add_argument("--workers", type=int, default=1, help="parallel processes (default: %(default)s)")
    gen.add_argument("--shard", type=_shard, default=(0, 1), help="k/n: generate episodes i with i %% n == k")
    gen.add_argument("--max-attempts", type=int, default=5, help="demonstrations tried per episode")
    gen.add_argument("--attempt-timeout", type=float, default=1800.0,
                     help="seconds before a stuck attempt is killed and retried; 0 = never (default: %(default)s)")
    gen.set_defaults(func=_generate)

    exp = sub.add_parser("expert", help="run scripted demonstrations (physics only) and report the success rate")
    exp.add_argument("--task", required=True, help="task name, or 'all'")
    exp.add_argument("--seeds", type=int, default=10, help="seeds 0..N-1 (default: %(default)s)")
    exp.set_defaults(func=_expert)

    mon = sub.add_parser("montage", help="PNG montage of every camera of an episode at one time step")
    mon.add_argument("episode", type=Path, help="episode folder (*.zarr)")
    mon.add_argument("--t", type=int, default=0, help="time step (default: %(default)s)")
    mon.add_argument("--out", type=Path, required=True, help="PNG file to write")
    mon.set_defaults(func=_montage)


def _generate(args: argparse.Namespace) -> int:
    from geo4d_core.cli import CommandError

    try:
        from sim.generate import GenerateConfig, generate_dataset
        from sim.tasks import task_names
    except ImportError as exc:
        raise CommandError(f"needs Drake: pip install -e '.[sim]' ({exc})") from exc
    if args.task not in task_names():
        raise CommandError(f"unknown task {args.task!r}; known tasks: {', '.join(task_names())}")
    cfg = GenerateConfig(task=args.task, out=args.out, episodes=args.episodes, seed=args.seed, cameras=args.cameras,
                         test_cameras=args.test_cameras, height=args.height, width=args.width, workers=args.workers,
                         shard=args.shard, max_attempts=args.max_attempts,
                         attempt_timeout=args.attempt_timeout)
    reports = generate_dataset(cfg)
    counts = {s: sum(r.status == s for r in reports) for s in ("done", "skipped", "failed")}
    print(f"{args.task}: {counts['done']} generated, {counts['skipped']} already complete, "
          f"{counts['failed']} failed -> {args.out}")
    return 1 if counts["failed"] else 0


def _expert(args: argparse.Namespace) -> int:
    import time

    from tqdm import tqdm

    from geo4d_core.cli import CommandError
    from sim.expert import run_demonstration
    from sim.tasks import make_task, task_names

    names = task_names() if args.task == "all" else [args.task]
    unknown = [n for n in names if n not in task_names()]
    if unknown:
        raise CommandError(f"unknown task {unknown[0]!r}; known tasks: {', '.join(task_names())}")
    rows = []
    for name in names:
        task, ok, failures, start = make_task(name), 0, [], time.perf_counter()
        for seed in tqdm(range(args.seeds), desc=name, unit="demo"):
            result = run_demonstration(task, seed)
            ok += result.outcome.success
            if not result.outcome.success:
                failures.append(f"seed {seed}: {result.outcome.reason}")
        rows.append((name, ok, args.seeds, (time.perf_counter() - start) / args.seeds, failures))
    print(f"{'task':<28s} {'successes':>10s} {'rate':>6s} {'s/demo':>7s}")
    for name, ok, n, per, failures in rows:
        print(f"{name:<28s} {ok:>4d} / {n:<3d} {ok / n:6.0%} {per:7.1f}")
        for line in failures:
            print(f"    {line}")
    return 0


def _montage(args: argparse.Namespace) -> int:
    import cv2

    from geo4d_core.data import EpisodeReader
    from geo4d_core.data.montage import camera_montage

    reader = EpisodeReader(args.episode)
    names = [f"{c} ({reader.cameras[c].split})" for c in reader.camera_names]
    image = camera_montage([reader.color(c, args.t) for c in reader.camera_names], names)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    print(f"wrote {args.out} ({len(reader.camera_names)} cameras, t={args.t})")
    return 0
