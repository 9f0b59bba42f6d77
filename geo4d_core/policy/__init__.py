"""geo4d_core.policy: one planning cycle of the robot — observe two views, predict, extract, plan.

`WorldModelPolicy` (reset / predict_action, the Diffusion-Policy-style interface) is what the ROS node and
the closed-loop simulation run; `plan_from_frames` is the extraction half, shared with the oracle policy
that runs it on true future frames.
"""

from geo4d_core.action.hand_mask import project_hand_mask
from geo4d_core.policy.world_model_policy import (
    ApproachMemory,
    PolicyConfig,
    PolicyOutput,
    RobotState,
    WorldModelPolicy,
    condition_frame,
    plan_from_frames,
)

__all__ = [
    "project_hand_mask",
    "ApproachMemory",
    "PolicyConfig",
    "PolicyOutput",
    "RobotState",
    "WorldModelPolicy",
    "condition_frame",
    "plan_from_frames",
]
