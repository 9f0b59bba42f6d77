"""`ros2 launch geo4d sim_bringup.launch.py task:=PutSpatulaOnTable seed:=0`: the whole loop over ROS
with no hardware — a simulated robot (Drake) publishing two RealSense-like cameras and executing plans,
and the world-model node planning on them.

Launch arguments: task, seed, max_cycles (0 = until success or timeout), checkpoint (default: the
YAML's, or the repository's models/spatula_tiny), params_file. Discovery stays on this machine.
`geo4d bringup --sim TASK` starts the same nodes from Python.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _nodes(context):
    from geo4d_ros.bringup import REPO_MODEL
    from geo4d_ros.params import WorldModelNodeParams, default_params_file, load_params_file
    from sim.robot import SimRobotConfig, sample_camera_pair
    from sim.tasks import make_task

    get = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    task, seed = get("task"), int(get("seed"))
    camera_n, _ = sample_camera_pair(SimRobotConfig(task=task, seed=seed))  # the trial's calibrated camera
    params_file = get("params_file") or str(default_params_file())
    checkpoint = get("checkpoint") or load_params_file(params_file).checkpoint or str(REPO_MODEL)
    overrides = {"camera_n_extrinsic": WorldModelNodeParams.extrinsic_from_pose(camera_n.X_WC),
                 "arms": list(make_task(task).arm_bases()), "base_frame": "world", "checkpoint": checkpoint}
    return [
        Node(executable="geo4d_sim_robot", name="geo4d_sim_robot", output="screen",
             parameters=[{"task": task, "seed": seed, "max_cycles": int(get("max_cycles"))}]),
        Node(executable="geo4d_world_model", name="geo4d_world_model", output="screen",
             parameters=[params_file, overrides]),
    ]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("task", default_value="PutSpatulaOnTable", description="simulated task"),
        DeclareLaunchArgument("seed", default_value="0", description="trial seed (objects and camera pair)"),
        DeclareLaunchArgument("max_cycles", default_value="0", description="planning cycles (0 = until done)"),
        DeclareLaunchArgument("checkpoint", default_value="", description="world-model checkpoint folder"),
        DeclareLaunchArgument("params_file", default_value="", description="parameter YAML (default: geo4d.yaml)"),
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST"),
        OpaqueFunction(function=_nodes),
    ])
