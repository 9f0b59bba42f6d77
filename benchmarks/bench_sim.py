"""Simulation throughput: physics real-time factor and rendered camera-frames per second, per task.

One scripted demonstration per task (seed 0) with cameras at the dataset resolution. Usage:
python benchmarks/bench_sim.py [--cameras N] [--height H --width W] [--tasks A,B]
"""

from __future__ import annotations

import argparse
import numpy as np

from geo4d_core.data.cameras import sample_cameras
from sim.expert import run_demonstration
from sim.tasks import make_task, task_names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--cameras", type=int, default=4)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=320)
    ap.add_argument("--tasks", default=",".join(task_names()))
    args = ap.parse_args()
    cams = sample_cameras(np.random.default_rng(0), args.cameras, height=args.height, width=args.width)
    print(f"simulation, {args.cameras} cameras at {args.height}x{args.width}, one demo per task (seed 0)")
    print(f"{'task':<28s} {'sim s':>6s} {'physics wall s':>15s} {'real-time factor':>17s} "
          f"{'camera-frames':>14s} {'render wall s':>14s} {'camera-frames/s':>16s} {'success':>8s}")
    print("-" * 126)
    for name in args.tasks.split(","):
        frames = [0]
        result = run_demonstration(make_task(name), 0, cameras=cams,
                                   on_step=lambda step: frames.__setitem__(0, frames[0] + len(step.frames)))
        walls = result.wall_seconds
        rtf = result.sim_seconds / walls["simulate"]
        print(f"{name:<28s} {result.sim_seconds:6.1f} {walls['simulate']:15.1f} {rtf:17.2f} {frames[0]:14d} "
              f"{walls['render']:14.1f} {frames[0] / walls['render']:16.1f} {str(result.outcome.success):>8s}")


if __name__ == "__main__":
    main()
