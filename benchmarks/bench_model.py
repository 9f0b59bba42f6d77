"""World-model `predict()` latency per stage, parameter counts and peak memory on this machine.

Each (configuration, resolution) runs in a fresh process so the peak resident memory (ru_maxrss) is its
own. Weights are freshly initialised: latency does not depend on their values.
Usage: python benchmarks/bench_model.py [--steps 25] [--repeats 2] [--configs tiny small]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import resource


def _measure(name: str, height: int, width: int, steps: int, repeats: int, queue) -> None:
    import numpy as np
    import torch

    from geo4d_core.model import Observation, WorldModel, WorldModelConfig

    torch.manual_seed(0)
    model = WorldModel.from_config(WorldModelConfig.preset(name, height=height, width=width))
    rss_loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    rng = np.random.default_rng(0)
    K = np.array([[0.8 * width, 0, width / 2], [0, 0.8 * width, height / 2], [0, 0, 1]])

    def obs():
        return Observation(rng.integers(0, 256, (height, width, 3), dtype=np.uint8),
                           rng.uniform(0.5, 1.5, (height, width)).astype(np.float32), K)

    model.predict(obs(), obs(), steps=1)  # warm-up (allocator, kernels)
    runs = [model.predict(obs(), obs(), steps=steps, seed=i).timings for i in range(repeats)]
    best = {k: min(r[k] for r in runs) for k in runs[0]}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(dict(name=name, hw=f"{height}x{width}", params=model.num_parameters(), timings=best,
                   rss_loaded_mb=rss_loaded / 1024, rss_peak_mb=peak / 1024))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--configs", nargs="+", default=["tiny", "small"])
    ap.add_argument("--sizes", nargs="+", default=["128x160", "256x320"])
    args = ap.parse_args()
    ctx = mp.get_context("spawn")
    rows = []
    for name in args.configs:
        for size in args.sizes:
            h, w = (int(v) for v in size.split("x"))
            q = ctx.Queue()
            p = ctx.Process(target=_measure, args=(name, h, w, args.steps, args.repeats, q))
            p.start()
            rows.append(q.get())
            p.join()
    print(f"predict(): h=10 frames, 2 views, {args.steps} Euler steps, best of {args.repeats}; times in seconds")
    print(f"{'config':<7s} {'image':>8s} {'U-Net':>8s} {'VAE x2':>8s} {'encode':>8s} {'step':>8s} "
          f"{'denoise':>8s} {'decode':>8s} {'total':>8s} {'peak RSS':>9s}")
    for r in rows:
        t, p = r["timings"], r["params"]
        print(f"{r['name']:<7s} {r['hw']:>8s} {p['unet'] / 1e6:7.1f}M {(p['rgb_vae'] + p['pointmap_vae']) / 1e6:7.2f}M "
              f"{t['encode_s']:8.3f} {t['denoise_step_s']:8.3f} {t['denoise_s']:8.2f} {t['decode_s']:8.2f} "
              f"{t['total_s']:8.2f} {r['rss_peak_mb']:7.0f}MB")


if __name__ == "__main__":
    main()
