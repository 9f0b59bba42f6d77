"""Test-suite wide settings.

Any test that starts a ROS node must stay on loopback (DESIGN.md §6): the discovery range is forced to
LOCALHOST for the whole session, and ROS logs go to a temporary folder.
"""

import os
import tempfile

os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_LOG_DIR", tempfile.mkdtemp(prefix="geo4d-ros-logs-"))
