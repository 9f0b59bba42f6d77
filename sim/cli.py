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


def _key_values(items: list[str]) -> dict:
    """["icp.crop_margin_z=0", ...] -> {"icp.crop_margin_z": 0, ...} (values parsed as YAML)."""
    import yaml

    out = {}
    for item in items:
        key, eq, raw = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"--extraction {item!r}: expected KEY=VALUE, e.g. icp.crop_margin_z=0")
        out[key.strip()] = yaml.safe_load(raw)
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `sim` subcommand to the `geo4d` CLI (imports pydrake only when run)."""
    p = subparsers.add_parser("sim", help="Drake simulation: dataset generation, closed-loop evaluation, montages")
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

    ev = sub.add_parser("eval", help="closed-loop evaluation of a policy (success rates, Table 2, videos)",
                        description="Run seeded closed-loop trials of a policy on tasks from held-out camera "
                                    "pairs; writes one JSON per trial, videos, and OUT/results.{json,md} "
                                    "(resumable, shardable).")
    ev.add_argument("--task", required=True, help="task name, or 'all'")
    ev.add_argument("--policy", required=True, choices=["world_model", "oracle", "scripted"],
                    help="world_model (needs --checkpoint), oracle (extraction on the true future) or scripted")
    ev.add_argument("--trials", type=int, required=True, help="trials per task")
    ev.add_argument("--out", type=Path, required=True, help="evaluation folder")
    ev.add_argument("--checkpoint", default=None, help="world-model checkpoint folder (save_pretrained format)")
    ev.add_argument("--seed", type=int, default=0, help="trial i uses seed SEED + i (default: %(default)s)")
    ev.add_argument("--workers", type=int, default=1, help="trials at the same time (default: %(default)s)")
    ev.add_argument("--shard", type=_shard, default=(0, 1), help="k/n: run the trials i with i %% n == k")
    ev.add_argument("--videos", type=int, default=0, help="record videos of trials i < VIDEOS (default: %(default)s)")
    ev.add_argument("--chunk", type=int, default=10, help="plan steps executed per cycle (default: %(default)s)")
    ev.add_argument("--max-seconds", type=float, default=30.0, help="trial time limit, s (default: %(default)s)")
    ev.add_argument("--sampler-steps", type=int, default=10, help="world-model Euler steps (default: %(default)s)")
    ev.add_argument("--gripper-rule", choices=["centroid", "opening"], default=None,
                    help="open/closed rule of action extraction (default: the library default)")
    ev.add_argument("--extraction", nargs="+", default=[], metavar="KEY=VALUE",
                    help="change the policy's extraction settings (dotted ExtractionConfig fields, values as YAML), "
                         "e.g. icp.crop_margin_z=0 interpolate_gaps=true")
    ev.add_argument("--trial-timeout", type=float, default=3600.0,
                    help="seconds before a stuck trial process is killed; 0 = run in this process (default: %(default)s)")
    ev.set_defaults(func=_eval)

    rep = sub.add_parser("report", help="summarise an evaluation folder (e.g. after shards) into results.{json,md}")
    rep.add_argument("out", type=Path, help="evaluation folder")
    rep.set_defaults(func=_report)

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


def _eval(args: argparse.Namespace) -> int:
    from geo4d_core.cli import CommandError

    try:
        from sim.evaluation import EvalConfig, run_evaluation
        from sim.tasks import task_names
    except ImportError as exc:
        raise CommandError(f"needs Drake: pip install -e '.[sim]' ({exc})") from exc
    tasks = task_names() if args.task == "all" else [args.task]
    try:
        cfg = EvalConfig(tasks=tasks, policy=args.policy, trials=args.trials, out=args.out, checkpoint=args.checkpoint,
                         seed=args.seed, workers=args.workers, shard=args.shard, videos=args.videos, chunk=args.chunk,
                         max_seconds=args.max_seconds, sampler_steps=args.sampler_steps,
                         gripper_rule=args.gripper_rule, trial_timeout=args.trial_timeout,
                         extraction_overrides=_key_values(args.extraction))
        summary = run_evaluation(cfg)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    _print_summary(summary, args.out)
    return 0


def _report(args: argparse.Namespace) -> int:
    from geo4d_core.cli import CommandError
    from sim.evaluation import write_report

    if not args.out.is_dir():
        raise CommandError(f"evaluation folder {args.out} does not exist")
    summary = write_report(args.out)
    if not summary["rows"]:
        raise CommandError(f"no trial results under {args.out} (expected TASK/POLICY/trial_*.json)")
    _print_summary(summary, args.out)
    return 0


def _print_summary(summary: dict, out: Path) -> None:
    from sim.evaluation import results_markdown

    print(results_markdown(summary))
    print(f"results: {out / 'results.md'} and {out / 'results.json'}")
