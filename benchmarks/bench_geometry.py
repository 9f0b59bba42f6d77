"""Per-frame cost of the core geometry ops (geo4d_core.geometry) on the CPU.

Prints one aligned table: for each op, image size (256×320 and 480×640) and backend (numpy float32,
torch float32 on the CPU), the median, 10th-percentile and minimum wall time per frame in ms over
`--repeats` timed calls (time.perf_counter, after a warm-up), and the median in ms per megapixel.
Depth maps are realistic: 0.3-3 m with 5 % invalid (zero) pixels.

Usage: python benchmarks/bench_geometry.py [--repeats 200]   (also run by benchmarks/run_all.py)
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

try:
    import geo4d_core  # noqa: F401
except ImportError:  # run from a checkout without installing: python benchmarks/bench_geometry.py
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from geo4d_core.geometry import (
    depth_to_pointmap,
    look_at,
    pointmap_m_to_n,
    project_points,
    transform_points,
)

SIZES = [(256, 320), (480, 640)]


def _time_ms(fn: Callable[[], object], repeats: int, warmup: int = 10) -> np.ndarray:
    for _ in range(warmup):
        fn()
    out = np.empty(repeats)
    for i in range(repeats):
        t0 = time.perf_counter()
        fn()
        out[i] = time.perf_counter() - t0
    return out * 1e3


def _cases(height: int, width: int, backend: str) -> list[tuple[str, Callable[[], object]]]:
    rng = np.random.default_rng(0)
    depth = rng.uniform(0.3, 3.0, (height, width)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.05] = 0.0
    f = 0.8 * width
    K = np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
    X_WCn = look_at(np.array([0.9, -0.2, 0.7]), np.zeros(3))
    X_WCm = look_at(np.array([-0.3, 0.9, 0.6]), np.zeros(3))
    X_CnCm = np.linalg.inv(X_WCn) @ X_WCm
    points, valid = depth_to_pointmap(depth, K)
    if backend == "torch":
        depth, points, valid = torch.from_numpy(depth), torch.from_numpy(points), torch.from_numpy(valid)
        K, X_WCn, X_WCm, X_CnCm = (torch.from_numpy(a).float() for a in (K, X_WCn, X_WCm, X_CnCm))
    return [
        ("depth_to_pointmap", lambda: depth_to_pointmap(depth, K)),
        ("transform_points (H,W,3)", lambda: transform_points(X_CnCm, points)),
        ("pointmap_m_to_n (+mask)", lambda: pointmap_m_to_n(points, X_WCn, X_WCm, valid)),
        ("project_points", lambda: project_points(points, K, height, width)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=200, help="timed calls per row")
    # Under benchmarks/run_all.py (runpy) sys.argv holds the runner's name filters: ignore positionals.
    args, unknown = parser.parse_known_args(argv)
    bad = [a for a in unknown if a.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")

    print(f"geometry ops, CPU: {platform.machine()}, numpy {np.__version__}, torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), {args.repeats} repeats, ms per frame")
    header = ("op", "size", "backend", "median ms", "p10 ms", "min ms", "ms / MPix")
    rows = []
    for height, width in SIZES:
        for backend in ("numpy", "torch"):
            for name, fn in _cases(height, width, backend):
                t = _time_ms(fn, args.repeats)
                med = float(np.median(t))
                rows.append((name, f"{height}x{width}", f"{backend} f32", f"{med:.3f}",
                             f"{np.percentile(t, 10):.3f}", f"{t.min():.3f}",
                             f"{med / (height * width / 1e6):.3f}"))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    align = ["<", "<", "<", ">", ">", ">", ">"]
    fmt = "  ".join(f"{{:{a}{w}}}" for a, w in zip(align, widths))
    print(fmt.format(*header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt.format(*r))
    return 0


if __name__ == "__main__":
    main(sys.argv[1:])
