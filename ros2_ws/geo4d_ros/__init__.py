"""geo4d_ros: the ROS 2 nodes of the `geo4d` package (world-model node, plan publishing) on rclpy.

Imported by the `geo4d` ROS 2 package (package.xml at the repository root); `ros2_ws/src/geo4d` links
back to the repository root so `colcon build` in `ros2_ws/` builds it. Builds on geo4d_core.

Modules: `world_model_node` (two RGB-D cameras + robot state in, plans out), `sim_robot_node` (a Drake
trial over ROS), `bringup` (`geo4d bringup`), `runner` (the node programs' main loop), `params` (the node's typed parameters), `problems` (counted,
rate-limited error reports), `conversions` (numpy ⇄ messages; our cv_bridge equivalent), `sync`
(approximate-time pairing; our message_filters equivalent) and `env` (the loopback-only ROS environment).
See ros2_ws/README.md.
"""
