"""`geo4d demo` (what `make demo` runs): one closed-loop PutSpatulaOnTable trial with the committed world
model, and the oracle on the same trial for comparison.

1. Build the Drake trial (seeded object placement, a held-out camera pair), observe both views.
2. `world_model` policy: the committed checkpoint (`models/spatula_tiny`) predicts the next 10 frames of both
   views, action extraction tracks the hand through them, the checked plan runs on the simulated arm;
   repeat until success, a safety stop or the time limit.
3. `oracle` policy on the same trial seed: the same extraction and execution on the true future frames.
4. Write `report.md` (outcomes, failure reasons, time per cycle by stage), a video per policy (actual
   views above, predicted / true future below, extracted trajectory drawn in) and a point-cloud snapshot
   (PLY + PNG side view) of the world model's first prediction, and print where they are.
"""

from __future__ import annotations

import argparse
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_CHECKPOINT = Path(__file__).resolve().parents[1] / "models" / "spatula_tiny"


@dataclass
class DemoConfig:
    """Settings of `run_demo`."""

    out_dir: Path = Path("out/demo")  # where the report, videos and snapshot are written
    checkpoint: Path = DEFAULT_CHECKPOINT  # world-model checkpoint folder (save_pretrained format)
    task: str = "PutSpatulaOnTable"  # task of the trial
    seed: int = 0  # trial seed (object placement, camera pair)
    policies: tuple[str, ...] = ("world_model", "oracle")  # policies run on the trial, in order
    max_seconds: float = 12.0  # trial time limit, simulated seconds
    sampler_steps: int = 10  # world-model Euler steps per cycle
    extra: dict = field(default_factory=dict)  # further EvalConfig fields (e.g. chunk), for tests


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `demo` subcommand to the `geo4d` CLI (imports Drake only when run)."""
    p = subparsers.add_parser("demo", help="the main job: a closed-loop Drake trial of the world model and the oracle",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=DemoConfig.out_dir, help="output folder (default: %(default)s)")
    p.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="world-model checkpoint folder "
                   "(default: the committed models/spatula_tiny)")
    p.add_argument("--seed", type=int, default=DemoConfig.seed, help="trial seed (default: %(default)s)")
    p.add_argument("--max-seconds", type=float, default=DemoConfig.max_seconds,
                   help="trial time limit, simulated seconds (default: %(default)s)")
    p.add_argument("--sampler-steps", type=int, default=DemoConfig.sampler_steps,
                   help="world-model Euler steps per cycle (default: %(default)s)")
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from geo4d_core.cli import CommandError

    try:
        import pydrake  # noqa: F401
    except ImportError as exc:
        raise CommandError(f"needs Drake: pip install -e '.[sim]' ({exc})") from exc
    if not args.checkpoint.is_dir():
        raise CommandError(f"checkpoint folder {args.checkpoint} does not exist")
    cfg = DemoConfig(out_dir=args.out, checkpoint=args.checkpoint, seed=args.seed, max_seconds=args.max_seconds,
                     sampler_steps=args.sampler_steps)
    report = run_demo(cfg)
    print(report.read_text())
    print(f"report: {report}")
    return 0


def run_demo(cfg: DemoConfig) -> Path:
    """Run the demo trials and write the report; returns the path of `report.md`."""
    from sim.evaluation import EvalConfig, results_markdown, run_evaluation

    start = time.perf_counter()
    out = Path(cfg.out_dir)
    shutil.rmtree(out / "trials", ignore_errors=True)  # the demo's own trials of an earlier run
    results = {}
    for policy in cfg.policies:
        ev = EvalConfig(tasks=[cfg.task], policy=policy, trials=1, out=out / "trials", seed=cfg.seed,
                        checkpoint=str(cfg.checkpoint) if policy == "world_model" else None, videos=1,
                        max_seconds=cfg.max_seconds, sampler_steps=cfg.sampler_steps, trial_timeout=0,
                        **cfg.extra)
        summary = run_evaluation(ev, progress=True)
        results[policy] = _trial(out / "trials", cfg.task, policy)
    lines = [f"# geo4d demo: {cfg.task}, trial seed {cfg.seed}", "",
             f"Closed loop in Drake from two held-out test cameras "
             f"({', '.join(next(iter(results.values()))['camera_sources'])} of the trial's pool), "
             f"time limit {cfg.max_seconds:g} s; checkpoint `{cfg.checkpoint}`.", "",
             "| policy | success | stop | reason | cycles | plans executed | simulated s | wall s |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for policy, d in results.items():
        executed = sum(c["executed"] for c in d["cycles"])
        lines.append(f"| {policy} | {'yes' if d['success'] else 'no'} | {d['stop']} | {d['reason']} | "
                     f"{len(d['cycles'])} | {executed} | {d['sim_seconds']:.1f} | {d['wall_seconds']:.0f} |")
    lines += ["", "## Time per planning cycle", "", results_markdown(summary).split("\n\n", 2)[-1].strip(), ""]
    lines += ["## Files", ""]
    for policy, d in results.items():
        files = d.get("files", {})
        if files.get("video"):
            lines.append(f"- {policy} video (actual views above; {'true future' if policy == 'oracle' else 'prediction'}"
                         f" below; planned TCP path green = open, red = closed): `{_rel(files['video'], out)}`")
        if files.get("png"):
            lines.append(f"- {policy} point-cloud snapshot of its first forecast (both views in camera n's frame): "
                         f"`{_rel(files['ply'], out)}`, side view `{_rel(files['png'], out)}`")
            lines += ["", f"![{policy} point cloud]({_rel(files['png'], out)})", ""]
    lines += ["", f"Every trial record (per-cycle plans, violations, timings): `{_rel(out / 'trials', out)}`; "
              f"done in {time.perf_counter() - start:.0f} s."]
    report = out / "report.md"
    report.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return report


def _trial(folder: Path, task: str, policy: str) -> dict:
    import json

    from sim.evaluation import trial_path

    return json.loads(trial_path(folder, task, policy, 0).read_text())


def _rel(path: str | Path, base: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(base.resolve()))
    except ValueError:
        return str(path)
