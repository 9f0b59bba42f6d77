"""Hand tracking speed: registration time and tracked frames per second per view, at 256x320.

Frames are ray-cast renderings of the Panda hand moving along a pick-like path (2-3 cm and a few degrees
per 10 Hz step), rendered before timing. Usage: python benchmarks/bench_tracking.py [--frames 30]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np
from scipy.spatial.transform import Rotation

from geo4d_core.action.gripper_state import measure_fingers
from geo4d_core.action.hand import load_hand_model
from geo4d_core.action.icp_tracker import IcpHandTracker, IcpTrackerConfig
from geo4d_core.action.render import HAND_LABEL, HandScene, camera_looking_at
from geo4d_core.geometry.poses import invert_pose, make_pose, rotation_distance, translation_distance
from geo4d_core.policy import PolicyConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=30)
    args = ap.parse_args()
    scene = HandScene(256, 320)
    X_CW = invert_pose(camera_looking_at(np.array([0.5, 0.0, 0.25]), np.array([1.1, -0.5, 0.75])))
    R_down = Rotation.from_euler("x", np.pi).as_matrix()
    poses = []
    for k in range(args.frames + 1):
        s = k / args.frames
        p = [0.45 + 0.15 * np.sin(np.pi * s), -0.1 + 0.25 * s, 0.35 - 0.15 * np.sin(np.pi * s)]
        poses.append(X_CW @ make_pose(Rotation.from_euler("z", 0.6 * s).as_matrix() @ R_down, p))
    frames = [scene.render(X, 0.08) for X in poses]
    # The evaluation's 128x160 views from farther away: the hand covers about 100 pixels, fewer than
    # min_points, so the confidence also casts the rays of its expected pixels.
    small = HandScene(128, 160, 110.0)
    frames_small = [small.render(X, 0.08) for X in poses]
    model = load_hand_model()
    rows = []
    policy = PolicyConfig().extraction.icp
    # (name, settings, frames, registration with the true first pose as guess; without: FPFH + RANSAC)
    settings = [("default", IcpTrackerConfig(), frames, True),
                ("default, no pose guess", IcpTrackerConfig(), frames, False),
                ("no model-to-scene pass", IcpTrackerConfig(model_to_scene=False), frames, True),
                ("single start", IcpTrackerConfig(constant_velocity=False), frames, True),
                ("planning cycle (policy)", policy, frames, True),
                ("policy, 128x160", policy, frames_small, True),
                ("policy, 128x160, no visibility", replace(policy, expected_visible_fraction=0.0), frames_small, True)]
    for name, cfg, frames, guess in settings:
        tracker = IcpHandTracker(cfg, model)
        pts, valid, labels = frames[0]
        t0 = time.perf_counter()
        tracker.register_points(pts, valid, labels == HAND_LABEL, poses[0] if guess else None)
        reg = time.perf_counter() - t0
        times, errors, rot_errors, scores = [], [], [], []
        for (pts, valid, _), X in zip(frames[1:], poses[1:]):
            t0 = time.perf_counter()
            res = tracker.track_points(pts, valid)
            times.append(time.perf_counter() - t0)
            errors.append(translation_distance(res.X_CG, X))
            rot_errors.append(np.degrees(rotation_distance(res.X_CG, X)))
            scores.append(res.score)
        rows.append((name, reg, np.median(times), np.median(errors), np.median(rot_errors), np.median(scores)))
    t0 = time.perf_counter()
    frames = settings[0][2]
    for (pts, valid, _), X in zip(frames[1:], poses[1:]):
        measure_fingers(pts, valid, X)
    fingers = (time.perf_counter() - t0) / args.frames
    print(f"hand tracking at 256x320 (unless named), one view, {args.frames} frames, "
          f"{os.environ.get('OMP_NUM_THREADS', 'all')} OpenMP threads; times in ms")
    print(f"{'tracker':<32s} {'register':>9s} {'track/frame':>12s} {'frames/s':>9s} {'median err mm':>14s} {'median err deg':>15s} {'median conf':>12s}")
    for name, reg, step, err, rot, conf in rows:
        print(f"{name:<32s} {1e3 * reg:9.1f} {1e3 * step:12.1f} {1 / step:9.1f} {1e3 * err:14.2f} {rot:15.2f} {conf:12.2f}")
    print(f"gripper state (finger centroids): {1e3 * fingers:.1f} ms per frame")


if __name__ == "__main__":
    main()
