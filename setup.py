"""The `geo4d` distribution: pip-installable Python packages and the `geo4d` ROS 2 package (ament_python).

Python packages:
  geo4d_core  the library (geometry, data format, metrics, model, action extraction, policy); no ROS, no Drake
  sim         Drake scenes, tasks, dataset generation, closed-loop evaluation        (extra: [sim])
  training    training and evaluation helpers for `training/*.py` scripts            (extra: [train])
  geo4d_ros   the ROS 2 nodes, lives in ros2_ws/geo4d_ros                            (extra: [ros])

Install on a CPU machine with the torch pin (see Makefile): pip install -c constraints-cpu.txt -e ".[all,dev]"
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE_NAME = "geo4d"

CORE_REQUIRES = [
    "numpy>=1.24",
    "scipy>=1.10",
    "torch>=2.1",
    "zarr>=3.0",
    "pyyaml>=6.0",
    "tqdm>=4.60",
    "opencv-python-headless>=4.8",
    "diffusers>=0.30",
    "safetensors>=0.4",
    "einops>=0.7",
]

EXTRAS = {
    # Drake simulation of the LBM-style tasks (sim/). drake 1.51.1 is the newest wheel for Python 3.11.
    "sim": ["drake>=1.51.1"],
    # ROS 2 nodes on rclpy from PyPI (ros2_ws/). launch / launch_ros come from a workstation ROS install.
    "ros": [
        "ros-rclpy[fastrtps]",
        "ros-sensor-msgs",
        "ros-geometry-msgs",
        "ros-nav-msgs",
        "ros-std-msgs",
        "ros-std-srvs",
        "ros-trajectory-msgs",
        "ros-visualization-msgs",
    ],
    # Training on GPU servers (training/).
    "train": ["accelerate>=0.30", "tensorboard>=2.14"],
    # CPU pose tracking / registration for action extraction.
    "tracking": ["open3d-cpu>=0.18; platform_machine == 'x86_64'"],
    # Test suite.
    "dev": ["pytest>=7", "hypothesis>=6.80", "pytest-timeout>=2.1"],
}
EXTRAS["all"] = sorted({req for name in ("sim", "ros", "train", "tracking") for req in EXTRAS[name]})

setup(
    name=PACKAGE_NAME,
    version="0.1.0",
    description="Geometry-aware 4D world model for robot manipulation, with ROS 2 bringup and Drake evaluation",
    long_description=__doc__,
    python_requires=">=3.10",
    packages=find_packages(include=["geo4d_core", "geo4d_core.*", "sim", "sim.*", "training", "training.*"])
    + find_packages(where="ros2_ws", include=["geo4d_ros", "geo4d_ros.*"]),
    package_dir={"geo4d_ros": "ros2_ws/geo4d_ros"},
    package_data={"geo4d_core": ["**/*.md", "**/*.yaml"], "sim": ["**/*.md", "**/*.yaml"]},
    data_files=[
        # ament index marker and manifest, so colcon / ros2 find the `geo4d` package.
        ("share/ament_index/resource_index/packages", ["resource/geo4d"]),
        (f"share/{PACKAGE_NAME}", ["package.xml"]),
        (f"share/{PACKAGE_NAME}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE_NAME}/config", glob("config/*.yaml")),
    ],
    install_requires=CORE_REQUIRES,
    extras_require=EXTRAS,
    entry_points={
        # `geo4d` is the CLI; the two node executables are what `ros2 run geo4d ...` and the launch files start.
        "console_scripts": [
            "geo4d = geo4d_core.cli:main",
            "geo4d_world_model = geo4d_ros.world_model_node:main",
            "geo4d_sim_robot = geo4d_ros.sim_robot_node:main",
        ],
        # Subcommands of `geo4d`; each value is a function `register(subparsers)` that must import lightly
        # (heavy or optional dependencies are imported only when the subcommand runs).
        "geo4d.commands": [
            "bringup = geo4d_ros.bringup:register",
            "demo = sim.demo:register",
            "episode = geo4d_core.data.cli:register",
            "extract = geo4d_core.action.cli:register",
            "init-model = geo4d_core.model.cli:register_init",
            "predict = geo4d_core.model.cli:register",
            "sim = sim.cli:register",
            "synthetic-demo = geo4d_core.demo:register",
        ],
    },
    zip_safe=False,
    maintainer="geo4d maintainers",
    maintainer_email="geo4d@example.com",
    license="Apache-2.0",
)
