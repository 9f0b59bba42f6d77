"""Closed-loop planning cycle: wall time per cycle split into observation rendering, prediction, extraction
and execution (IK planning + physics), for the committed world model and the oracle.

One PutSpatulaOnTable trial per policy (trial seed 0, 128x160 views, chunk 10, no video), cut at a few
seconds of trial time. For the oracle, "predict" is the look-ahead simulation and rendering of the true
future (10 steps, 2 views). Usage:
python benchmarks/bench_closed_loop.py [--seconds S] [--checkpoint DIR] [--sampler-steps N]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from sim.closed_loop import TrialConfig, run_trial
from geo4d_core.policy import PolicyConfig

CHECKPOINT = Path(__file__).resolve().parents[1] / "models" / "spatula_tiny"
STAGES = ("observe", "predict", "extract", "execute")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0, help="trial time per policy, simulated seconds")
    ap.add_argument("--checkpoint", type=Path, default=CHECKPOINT)
    ap.add_argument("--sampler-steps", type=int, default=10)
    args = ap.parse_args()
    print(f"closed loop, PutSpatulaOnTable trial seed 0, 128x160, chunk 10, {args.seconds:g} s of trial time")
    print(f"{'policy':<12s} {'cycles':>6s} " + " ".join(f"{s + ' s':>10s}" for s in STAGES)
          + f" {'cycle s':>8s} {'executed':>9s}")
    print("-" * 82)
    for policy in ("world_model", "oracle"):
        cfg = TrialConfig(task="PutSpatulaOnTable", policy=policy, seed=0, max_seconds=args.seconds,
                          checkpoint=str(args.checkpoint) if policy == "world_model" else None,
                          policy_config=PolicyConfig(steps=args.sampler_steps), max_rejections=1000)
        result = run_trial(cfg)
        cycles = result.cycles
        mean = {s: float(np.mean([c.timings[s] for c in cycles])) for s in STAGES}
        total = float(np.mean([sum(c.timings.values()) for c in cycles]))
        executed = sum(c.executed for c in cycles)
        print(f"{policy:<12s} {len(cycles):6d} " + " ".join(f"{mean[s]:10.2f}" for s in STAGES)
              + f" {total:8.2f} {executed:>4d}/{len(cycles):<4d}")


if __name__ == "__main__":
    main()
