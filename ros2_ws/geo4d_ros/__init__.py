"""geo4d_ros: the ROS 2 nodes of the `geo4d` package (world-model node, plan publishing) on rclpy.

Imported by the `geo4d` ROS 2 package (package.xml at the repository root); `ros2_ws/src/geo4d` links
back to the repository root so `colcon build` in `ros2_ws/` builds it. Builds on geo4d_core.

So far: `geo4d_ros.env`, the loopback-only ROS environment every node, test and script uses;
`geo4d_ros.conversions`, numpy ⇄ message conversions (Image, CameraInfo, PointCloud2, Path, JointState,
stamps; our cv_bridge / ros2_numpy equivalents); `geo4d_ros.sync`, approximate-time pairing of N streams
with drop counters (our message_filters equivalent, no rclpy needed).
"""
