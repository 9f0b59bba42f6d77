"""Write a `Prediction` to files people can open: MP4 videos, PNG strips, colourised depth, PLY point clouds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np

from geo4d_core.model.world_model import Prediction

__all__ = ["write_ply", "write_video", "colorize_depth", "frame_strip", "save_prediction"]


def write_ply(path: str | Path, points: np.ndarray, colors: np.ndarray | None = None) -> Path:
    """Binary little-endian PLY of (N, 3) float points (metres) with optional (N, 3) uint8 RGB colours."""
    path = Path(path)
    pts = np.asarray(points, dtype=np.float32).reshape(-1, 3)
    header = ["ply", "format binary_little_endian 1.0", f"element vertex {len(pts)}",
              "property float x", "property float y", "property float z"]
    if colors is not None:
        cols = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
        if len(cols) != len(pts):
            raise ValueError(f"write_ply: {len(pts)} points but {len(cols)} colours")
        header += ["property uchar red", "property uchar green", "property uchar blue"]
        rec = np.empty(len(pts), dtype=[("p", "<f4", 3), ("c", "u1", 3)])
        rec["p"], rec["c"] = pts, cols
    else:
        rec = pts.astype("<f4")
    with open(path, "wb") as f:
        f.write(("\n".join(header + ["end_header"]) + "\n").encode("ascii"))
        f.write(rec.tobytes())
    return path


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: float = 10.0) -> Path:
    """MP4 (mp4v) of (H, W, 3) uint8 RGB frames."""
    path = Path(path)
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError("write_video: no frames")
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w, h))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV could not open an MP4 writer for {path}")
    try:
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return path


def colorize_depth(depth: np.ndarray, lo: float | None = None, hi: float | None = None) -> np.ndarray:
    """(..., H, W) metres -> (..., H, W, 3) uint8 RGB (turbo colour map; black where depth is 0)."""
    d = np.asarray(depth, dtype=np.float32)
    valid = d > 0
    if lo is None or hi is None:
        vals = d[valid]
        lo = float(vals.min()) if vals.size else 0.0
        hi = float(vals.max()) if vals.size else 1.0
    scaled = np.clip((d - lo) / max(hi - lo, 1e-6), 0, 1)
    img = cv2.applyColorMap((scaled * 255).astype(np.uint8).reshape(-1, d.shape[-1]), cv2.COLORMAP_TURBO)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB).reshape(*d.shape, 3)
    return np.where(valid[..., None], img, 0).astype(np.uint8)


def frame_strip(frames: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) -> (H, T*W, 3): frames side by side."""
    return np.concatenate(list(frames), axis=1)


def save_prediction(pred: Prediction, out: str | Path, *, extra: dict[str, Any] | None = None) -> dict[str, Path]:
    """Write videos, strips, depth, the last step's point cloud and the raw arrays into folder `out`.

    Files: rgb_n.mp4, rgb_m.mp4, rgb.png (view n over view m), depth_n.png, points_t+h.ply (both views
    at the last predicted step, camera n's frame, metres), prediction.npz, summary.json.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "rgb_n_video": write_video(out / "rgb_n.mp4", pred.rgb_n),
        "rgb_m_video": write_video(out / "rgb_m.mp4", pred.rgb_m),
    }
    strip = np.concatenate([frame_strip(pred.rgb_n), frame_strip(pred.rgb_m)], axis=0)
    cv2.imwrite(str(out / "rgb.png"), cv2.cvtColor(strip, cv2.COLOR_RGB2BGR))
    files["rgb_strip"] = out / "rgb.png"
    depth = colorize_depth(pred.depth_n)
    cv2.imwrite(str(out / "depth_n.png"), cv2.cvtColor(frame_strip(depth), cv2.COLOR_RGB2BGR))
    files["depth_strip"] = out / "depth_n.png"
    last = pred.horizon - 1
    pts = np.concatenate([pred.points_n[last][pred.valid_n[last]], pred.points_m_in_n[last][pred.valid_m[last]]])
    cols = np.concatenate([pred.rgb_n[last][pred.valid_n[last]], pred.rgb_m[last][pred.valid_m[last]]])
    files["point_cloud"] = write_ply(out / f"points_t+{pred.horizon}.ply", pts, cols)
    np.savez_compressed(
        out / "prediction.npz", rgb_n=pred.rgb_n, rgb_m=pred.rgb_m, points_n=pred.points_n,
        points_m_in_n=pred.points_m_in_n, depth_n=pred.depth_n, valid_n=pred.valid_n, valid_m=pred.valid_m,
        K_n=pred.K_n, K_m=pred.K_m,
    )
    files["arrays"] = out / "prediction.npz"
    summary = {"steps": pred.steps, "seed": pred.seed, "horizon": pred.horizon, "timings_s": pred.timings}
    summary.update(extra or {})
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    files["summary"] = out / "summary.json"
    return files
