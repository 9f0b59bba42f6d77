"""Training throughput of the stereo 4D model on this machine: seconds per optimizer step for `tiny` /
`small`, with cached latents and with VAE encoding in the step, and the data-loading share of the step.

Runs the real trainer (`training.stereo4d_training.train`) on a small synthetic dataset at 128x160 with
batch 4, in a fresh process per row. The first step (graph warm-up) is included in `train_seconds`, so the
table reports the per-step times the trainer measures itself (data vs model, excluding cache building).
Usage: python benchmarks/bench_training.py [--steps 8] [--configs tiny small] [--threads N]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import tempfile
from pathlib import Path


def _dataset(root: Path) -> None:
    from geo4d_core.data.synthetic import SyntheticEpisodeConfig, make_synthetic_episode

    for seed in range(2):
        cfg = SyntheticEpisodeConfig(height=128, width=160, num_frames=14, num_cameras=3, num_test_cameras=1,
                                     seed=seed)
        make_synthetic_episode(cfg).write(root / f"episode_{seed:06d}.zarr")


def _measure(root: str, preset: str, cached: bool, steps: int, threads: int | None, queue) -> None:
    from training.config import TrainConfig, load_config
    from training.stereo4d_training import train

    with tempfile.TemporaryDirectory() as out:
        over = [f"data.root={root}", "data.heldout_episodes=1", f"model.preset={preset}", f"output_dir={out}",
                f"max_steps={steps}", f"checkpoint_every={steps}", f"data.cache_latents={str(cached).lower()}",
                "optim.batch_size=4", "optim.lr=1e-4", f"log_every={steps}"]
        if threads:
            over.append(f"threads={threads}")
        s = train(load_config(TrainConfig, None, over), progress=False)
    queue.put(dict(preset=preset, cached=cached, data=s["data_seconds_per_step"],
                   model=s["model_seconds_per_step"], unet=s["parameters"]["unet"]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--configs", nargs="+", default=["tiny", "small"])
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        _dataset(Path(root))
        for preset in args.configs:
            for cached in (True, False):
                q = ctx.Queue()
                p = ctx.Process(target=_measure, args=(root, preset, cached, args.steps, args.threads, q))
                p.start()
                rows.append(q.get())
                p.join()
    print(f"train_stereo4d at 128x160, batch 4 (2 views x 10 frames), mean over {args.steps} steps; seconds")
    print(f"{'config':<7s} {'U-Net':>8s} {'latents':>8s} {'data/step':>10s} {'model/step':>11s} {'steps/s':>8s}")
    for r in rows:
        total = r["data"] + r["model"]
        print(f"{r['preset']:<7s} {r['unet'] / 1e6:7.2f}M {'cached' if r['cached'] else 'encoded':>8s} "
              f"{r['data']:10.3f} {r['model']:11.3f} {1 / total:8.2f}")


if __name__ == "__main__":
    main()
