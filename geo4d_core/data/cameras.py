"""Camera rigs for episodes: the paper's randomised camera placement (appendix), used by the synthetic
episodes here and by the Drake scenes in `sim/`.

World frame W: origin at the table centre, +z up, metres. Cameras use the OpenCV frame.
"""

from __future__ import annotations

import numpy as np

from geo4d_core.data.episode import CameraSpec
from geo4d_core.geometry import look_at

SHELL_RADIUS = (0.7, 1.2)  # distance of a camera from the table centre, metres
SHELL_BOX_LO = (0.2, -0.5, 0.7)  # lower corner of the allowed camera positions in W, metres
SHELL_BOX_HI = (0.6, 0.5, 1.2)  # upper corner of the allowed camera positions in W, metres


def sample_cameras(
    rng: np.random.Generator,
    num: int,
    *,
    height: int,
    width: int,
    num_test: int = 0,
    target_W: tuple[float, float, float] = (0.0, 0.0, 0.05),
    fov_deg: tuple[float, float] = (55.0, 70.0),
) -> list[CameraSpec]:
    """Sample cameras as in the paper's appendix.

    Positions lie in the shell SHELL_RADIUS around the table centre, restricted to the box
    SHELL_BOX_LO..SHELL_BOX_HI; each camera looks at a point jittered by up to 5 cm around `target_W`
    (world frame, metres), with a horizontal field of view drawn from `fov_deg` and the principal point
    at the image centre. The last `num_test` cameras are split "test", the others "train"; names are
    cam00, cam01, ...
    """
    if not 0 <= num_test <= num:
        raise ValueError(f"num_test must be in 0..{num}, got {num_test}")
    cams: list[CameraSpec] = []
    while len(cams) < num:
        eye = rng.uniform(SHELL_BOX_LO, SHELL_BOX_HI)
        if not SHELL_RADIUS[0] <= np.linalg.norm(eye) <= SHELL_RADIUS[1]:
            continue
        target = np.asarray(target_W, dtype=float) + rng.uniform(-0.05, 0.05, size=3)
        fov = np.deg2rad(rng.uniform(*fov_deg))
        f = 0.5 * width / np.tan(0.5 * fov)
        K = np.array([[f, 0.0, (width - 1) / 2], [0.0, f, (height - 1) / 2], [0.0, 0.0, 1.0]])
        split = "test" if len(cams) >= num - num_test else "train"
        cams.append(CameraSpec(f"cam{len(cams):02d}", K, look_at(eye, target), height, width, split))
    return cams
