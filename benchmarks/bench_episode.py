"""Episode format throughput: append, close, random reads and verify for a 16-camera episode.

Images come from the synthetic ray caster (realistic compressibility, unlike random noise).
Usage: python benchmarks/bench_episode.py [--frames N] [--height H --width W]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from geo4d_core.data import EpisodeReader, EpisodeWriter
from geo4d_core.data.synthetic import SyntheticEpisodeConfig, make_synthetic_episode


def _row(name: str, times_s: list[float], per: str) -> str:
    ms = np.asarray(times_s) * 1e3
    return f"{name:<34s} {np.median(ms):10.1f} {ms.min():8.1f}  {per}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--cameras", type=int, default=16)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=320)
    args = ap.parse_args()
    ep = make_synthetic_episode(SyntheticEpisodeConfig(
        height=args.height, width=args.width, num_frames=2, num_cameras=args.cameras, num_test_cameras=4))
    tmp = Path(tempfile.mkdtemp(prefix="geo4d-bench-"))
    try:
        append_s = []
        with EpisodeWriter(tmp / "episode.zarr", task="bench", seed=0, cameras=ep.cameras,
                           label_parts=ep.label_parts) as writer:
            for t in range(args.frames):
                start = time.perf_counter()
                writer.append(t / 10.0, ep.X_WE[t % 2], ep.gripper_width[t % 2], ep.frames[t % 2])
                append_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            path = writer.close(success=True)
            close_s = [time.perf_counter() - start]
        size_mb = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6
        open_s, read_s, all_s = [], [], []
        rng = np.random.default_rng(0)
        for _ in range(20):
            start = time.perf_counter()
            reader = EpisodeReader(path)
            open_s.append(time.perf_counter() - start)
            cam, t = ep.cameras[rng.integers(args.cameras)].name, int(rng.integers(args.frames))
            start = time.perf_counter()
            reader.frame(cam, t)
            read_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            for c in reader.camera_names:
                reader.frame(c, t)
            all_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        EpisodeReader(path).verify()
        verify_s = [time.perf_counter() - start]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"episode format, {args.cameras} cameras at {args.height}x{args.width}, {args.frames} frames "
          f"({size_mb:.1f} MB on disk, {size_mb / args.frames:.2f} MB per time step)")
    print(f"{'operation':<34s} {'median ms':>10s} {'min ms':>8s}  per")
    print("-" * 70)
    print(_row("append (all cameras, one step)", append_s, "time step"))
    print(_row("close (trim, finalise, rename)", close_s, "episode"))
    print(_row("open + validate", open_s, "episode"))
    print(_row("read one camera frame (rgb+d+label)", read_s, "frame"))
    print(_row("read all cameras at one step", all_s, "time step"))
    print(_row("verify every chunk", verify_s, "episode"))


if __name__ == "__main__":
    main()
