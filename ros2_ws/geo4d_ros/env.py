"""ROS environment settings that keep DDS traffic on this machine (DESIGN.md §6).

Without `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`, Fast DDS multicasts discovery on every network
interface; `ROS_LOCALHOST_ONLY` is ignored by this ROS version. Every node, launch, test and script of
geo4d applies these settings before `rclpy.init()`.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

LOOPBACK_ENV = {"ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}


def apply_loopback_env(
    env: MutableMapping[str, str] | None = None, *, domain_id: int | None = None, log_dir: str | None = None
) -> MutableMapping[str, str]:
    """Set the loopback-only discovery range (and optionally ROS_DOMAIN_ID / ROS_LOG_DIR) in `env`.

    Args:
        env: the mapping to update; defaults to `os.environ` (affects this process and its children).
        domain_id: ROS_DOMAIN_ID to use, e.g. a test-specific one so parallel runs do not talk.
        log_dir: ROS_LOG_DIR, e.g. a temporary folder in tests.
    Returns:
        The updated mapping.
    """
    target = os.environ if env is None else env
    target.update(LOOPBACK_ENV)
    if domain_id is not None:
        if not 0 <= domain_id <= 232:
            raise ValueError(f"ROS_DOMAIN_ID must be in 0..232, got {domain_id}")
        target["ROS_DOMAIN_ID"] = str(domain_id)
    if log_dir is not None:
        target["ROS_LOG_DIR"] = str(log_dir)
    return target
