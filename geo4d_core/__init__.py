"""geo4d_core: the geo4d library.

Geometry, the episode data format, metrics, and (in later modules) the stereo 4D world model, action
extraction and the policy. This package never imports rclpy or pydrake, so it can be used and tested
alone; `sim/`, `training/` and `ros2_ws/geo4d_ros` build on it.

Conventions (DESIGN.md §3): metres, seconds, radians; OpenCV camera frames (+x right, +y down,
+z forward); poses `X_AB` are 4×4 homogeneous transforms of frame B expressed in frame A.
"""

__version__ = "0.1.0"
