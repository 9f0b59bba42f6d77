"""`geo4d extract eval`: accuracy of action extraction on the true frames of recorded episodes.

    geo4d extract eval data/spatula/episode_000000.zarr --noise 0 0.002 0.005 --holes 0 0.05
    geo4d extract eval data/spatula --chunk 10 --gripper-rule opening

For each episode and camera pair (by default the first two test cameras, n = first), extraction runs on
the true frames (see `geo4d_core.action.evaluation`), once per noise level, hole fraction and view
setting (both views, n only, m only), and a table of median translation / rotation errors and gripper
accuracy is printed and saved as JSON.

By default the hand is registered once (first frame) and tracked to the end of the episode. With
`--chunk H` the episode is cut into planning cycles as the robot runs them: every H steps the hand is
registered again on the current frame (labels mask, recorded end-effector pose as the guess) and tracked
through the next H frames only (H = 10 is the world model's horizon). Each registration also gets what the
robot knows of itself: its pose one step earlier (its current motion) and its gripper's open / closed
state (`--no-robot-state` leaves them out).

`--settings policy` (default) evaluates the tracking settings the planning cycle runs with
(`PolicyConfig.extraction`: registration refines the robot's pose only, fine ICP stages, steps scoring
below its confidence floor hold the last pose); `--settings library` the library defaults of
`ExtractionConfig`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("extract", help="action extraction tools")
    sub = p.add_subparsers(dest="extract_command", metavar="ACTION", required=True)
    ev = sub.add_parser("eval", help="extraction accuracy on true frames of recorded episodes")
    ev.add_argument("episodes", nargs="+", type=Path, help="episode folders (*.zarr) or dataset folders")
    ev.add_argument("--views", nargs="+", default=["nm", "n", "m"], choices=["nm", "n", "m"],
                    help="view settings to evaluate: nm (fused), n only, m only (default: all three)")
    ev.add_argument("--noise", nargs="+", type=float, default=[0.0], help="depth noise std levels, metres")
    ev.add_argument("--holes", nargs="+", type=float, default=[0.0], help="missing-depth fractions")
    ev.add_argument("--no-pose-guess", action="store_true", help="register without the recorded pose (FPFH + RANSAC)")
    ev.add_argument("--stride", type=int, default=1, help="use every k-th frame (default 1 = 10 Hz)")
    ev.add_argument("--chunk", type=_positive_int, default=None, metavar="H",
                    help="planning cycles of H steps: re-register every H steps on the current frame with its "
                         "recorded pose as guess and track only the next H frames (default: register once, "
                         "track the whole episode); H = 10 matches the world model's horizon")
    ev.add_argument("--no-robot-state", action="store_true",
                    help="give registration only the pose guess, not the robot's previous pose (its current "
                         "motion) nor its gripper state")
    ev.add_argument("--gripper-rule", choices=["centroid", "opening"], default="opening",
                    help="open / closed from the finger opening best supported by the points (default) or "
                         "from the finger-centroid distance alone (GripperStateConfig.rule)")
    ev.add_argument("--settings", choices=list(SETTINGS), default="policy",
                    help="tracking settings: those of the planning cycle (PolicyConfig.extraction, default) or "
                         "the library defaults (ExtractionConfig())")
    ev.add_argument("--out", type=Path, default=None, help="JSON file for the results")
    ev.set_defaults(func=_eval)


SETTINGS = ("policy", "library")


def extraction_config(settings: str, views: str, gripper_rule: str):
    """The `ExtractionConfig` of `--settings` ("policy" or "library") for the views ("nm", "n", "m") and
    gripper rule of one evaluation run."""
    from dataclasses import replace

    from geo4d_core.action.extraction import ExtractionConfig

    if settings == "policy":
        from geo4d_core.policy import PolicyConfig

        base = PolicyConfig().extraction
    elif settings == "library":
        base = ExtractionConfig()
    else:
        raise ValueError(f"settings must be one of {SETTINGS}, got {settings!r}")
    return replace(base, views=tuple(views), gripper=replace(base.gripper, rule=gripper_rule))


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _eval(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from geo4d_core.action.evaluation import DepthCorruption, evaluate_episode
    from geo4d_core.action.hand import load_hand_model
    from geo4d_core.cli import CommandError
    from geo4d_core.data import EpisodeReader
    from geo4d_core.data.cli import _episode_paths

    paths = _episode_paths(args.episodes)
    try:
        model = load_hand_model()
    except FileNotFoundError as err:
        raise CommandError(str(err)) from None
    rows = []
    jobs = [(p, v, s, h) for p in paths for v in args.views for s in args.noise for h in args.holes]
    readers = {}
    for path, views, noise, holes in tqdm(jobs, desc="extract eval", unit="run"):
        reader = readers.setdefault(path, EpisodeReader(path))
        cams = reader.test_cameras if len(reader.test_cameras) >= 2 else reader.camera_names
        cfg = extraction_config(args.settings, views, args.gripper_rule)
        summary, _ = evaluate_episode(reader, cams[0], cams[1], config=cfg,
                                      corruption=DepthCorruption(noise_std=noise, hole_fraction=holes),
                                      pose_guess=not args.no_pose_guess, stride=args.stride, hand_model=model,
                                      chunk=args.chunk, robot_state=not args.no_robot_state)
        rows.append({**summary.as_dict(), "noise_std": noise, "hole_fraction": holes, "setting": views,
                     "gripper_rule": args.gripper_rule, "robot_state": not args.no_robot_state,
                     "settings": args.settings})
    print(f"{'episode':<22s} {'views':>5s} {'chunk':>5s} {'noise':>6s} {'holes':>5s} {'steps':>5s} {'med t (mm)':>10s} "
          f"{'p90 t':>7s} {'med r (deg)':>11s} {'gripper':>7s} {'conf':>5s} {'from m':>6s}")
    for r in rows:
        chunk = "-" if r["chunk"] is None else str(r["chunk"])
        print(f"{r['episode']:<22s} {r['setting']:>5s} {chunk:>5s} {r['noise_std']:6.3f} {r['hole_fraction']:5.2f} {r['steps']:5d} "
              f"{1e3 * r['median_translation_m']:10.1f} {1e3 * r['p90_translation_m']:7.1f} "
              f"{r['median_rotation_deg']:11.2f} {r['gripper_accuracy']:7.1%} {r['mean_confidence']:5.2f} "
              f"{r['fraction_from_m']:6.0%}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(rows, indent=2, default=lambda o: o.tolist() if isinstance(o, np.ndarray) else str(o)))
        print(f"results: {args.out}")
    return 0
