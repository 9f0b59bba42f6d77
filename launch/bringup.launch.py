"""`ros2 launch geo4d bringup.launch.py`: the geo4d world-model node on a robot workstation.

Launch arguments:
  params_file      parameter YAML (default: share/geo4d/config/geo4d.yaml)
  checkpoint       world-model checkpoint folder (default: the YAML's `checkpoint`)
  camera_n         RealSense namespace of camera n, the calibrated one (default: camera_n)
  camera_m         RealSense namespace of camera m (default: camera_m)
  discovery_range  ROS_AUTOMATIC_DISCOVERY_RANGE (default: LOCALHOST; SUBNET to reach other machines)

`geo4d bringup` starts the same node with the same parameters where the launch tools are absent.
The node executable `geo4d_world_model` is a console script of the geo4d package (on PATH once the
workspace's install/setup.bash is sourced, or in the venv's bin).
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _default_params_file() -> str:
    try:
        from ament_index_python.packages import get_package_share_directory

        return f"{get_package_share_directory('geo4d')}/config/geo4d.yaml"
    except Exception:  # noqa: BLE001 - not installed through colcon: the package's own lookup
        from geo4d_ros.params import default_params_file

        return str(default_params_file())


def camera_overrides(cam: str, namespace: str) -> dict:
    """Topic parameters of camera "n" or "m" under a RealSense namespace (as geo4d bringup --camera-n)."""
    return {f"color_{cam}_topic": f"/{namespace}/color/image_raw",
            f"depth_{cam}_topic": f"/{namespace}/aligned_depth_to_color/image_raw",
            f"info_{cam}_topic": f"/{namespace}/color/camera_info"}


def _nodes(context):
    get = lambda name: LaunchConfiguration(name).perform(context)  # noqa: E731
    overrides = {**camera_overrides("n", get("camera_n")), **camera_overrides("m", get("camera_m"))}
    if get("checkpoint"):
        overrides["checkpoint"] = get("checkpoint")
    return [Node(executable="geo4d_world_model", name="geo4d_world_model", output="screen", emulate_tty=True,
                 parameters=[get("params_file") or _default_params_file(), overrides])]


def generate_launch_description() -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value="", description="parameter YAML (default: geo4d.yaml)"),
        DeclareLaunchArgument("checkpoint", default_value="", description="world-model checkpoint folder"),
        DeclareLaunchArgument("camera_n", default_value="camera_n", description="RealSense namespace of camera n"),
        DeclareLaunchArgument("camera_m", default_value="camera_m", description="RealSense namespace of camera m"),
        DeclareLaunchArgument("discovery_range", default_value="LOCALHOST",
                              description="ROS_AUTOMATIC_DISCOVERY_RANGE (LOCALHOST keeps DDS on this machine)"),
        SetEnvironmentVariable("ROS_AUTOMATIC_DISCOVERY_RANGE", LaunchConfiguration("discovery_range")),
        OpaqueFunction(function=_nodes),
    ])
