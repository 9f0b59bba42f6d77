"""`geo4d bringup`: the nodes of `launch/bringup.launch.py` (and, with `--sim TASK`, of
`launch/sim_bringup.launch.py`) started from Python, for machines without the ROS launch tools.

Same nodes, same parameter file (`config/geo4d.yaml` by default), same overrides:

    geo4d bringup --checkpoint models/spatula_tiny                    # robot workstation
    geo4d bringup --camera-n cam_left --camera-m cam_right --set slop=0.03
    geo4d bringup --sim PutSpatulaOnTable --seed 3 --max-cycles 5   # closed loop over ROS, no hardware

Every node runs in this process on one multi-threaded executor, with ROS discovery limited to this
machine (DESIGN.md §6) unless `--discovery-range` says otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO_MODEL = Path(__file__).resolve().parents[2] / "models" / "spatula_tiny"  # committed checkpoint (checkout)


def camera_topic_overrides(cam: str, namespace: str) -> dict[str, str]:
    """The world-model node's topic parameters of camera "n" or "m" under a RealSense namespace."""
    return {f"color_{cam}_topic": f"/{namespace}/color/image_raw",
            f"depth_{cam}_topic": f"/{namespace}/aligned_depth_to_color/image_raw",
            f"info_{cam}_topic": f"/{namespace}/color/camera_info"}


def _parse_set(items: list[str]) -> dict[str, Any]:
    import yaml

    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--set expects NAME=VALUE, got {item!r}")
        out[name.strip()] = yaml.safe_load(value)
    return out


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `bringup` subcommand to the `geo4d` CLI (imports rclpy only when run)."""
    p = subparsers.add_parser(
        "bringup", help="start the geo4d ROS 2 nodes from Python (what bringup.launch.py starts)",
        description="Start the world-model node (and with --sim a simulated robot) with the same parameters "
                    "as launch/bringup.launch.py, in this process. Ctrl-C stops.")
    p.add_argument("--params", type=Path, default=None, help="parameter YAML (default: the shipped config/geo4d.yaml)")
    p.add_argument("--checkpoint", default=None, help="world-model checkpoint folder (overrides the YAML)")
    p.add_argument("--camera-n", default=None, help="RealSense namespace of camera n (default: camera_n)")
    p.add_argument("--camera-m", default=None, help="RealSense namespace of camera m (default: camera_m)")
    p.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                   help="override one node parameter (value parsed as YAML); repeatable")
    p.add_argument("--sim", metavar="TASK", default=None,
                   help="also run a simulated robot doing TASK over ROS (cameras, robot state, plan execution)")
    p.add_argument("--seed", type=int, default=0, help="--sim: trial seed (default: %(default)s)")
    p.add_argument("--max-cycles", type=int, default=0,
                   help="--sim: stop after this many planning cycles (default: until success or timeout)")
    p.add_argument("--max-seconds", type=float, default=30.0, help="--sim: trial time limit, simulated seconds")
    p.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: the environment's)")
    p.add_argument("--discovery-range", default="LOCALHOST", choices=["LOCALHOST", "SUBNET", "SYSTEM_DEFAULT"],
                   help="ROS_AUTOMATIC_DISCOVERY_RANGE (default: %(default)s, traffic stays on this machine)")
    p.set_defaults(func=_run)


def build_params(args: argparse.Namespace, robot=None):
    """The world-model node's parameters from the CLI arguments (and the simulated robot, if any: anything
    with `X_BC_n` and `arms`, e.g. a SimRobotNode)."""
    from geo4d_ros.params import WorldModelNodeParams, default_params_file, load_params_file

    overrides: dict[str, Any] = _parse_set(args.set)
    if args.checkpoint is not None:
        overrides["checkpoint"] = str(args.checkpoint)
    if args.camera_n:
        overrides.update(camera_topic_overrides("n", args.camera_n))
    if args.camera_m:
        overrides.update(camera_topic_overrides("m", args.camera_m))
    if robot is not None:  # the simulated trial defines the calibration and the arms
        overrides.setdefault("camera_n_extrinsic", WorldModelNodeParams.extrinsic_from_pose(robot.X_BC_n))
        overrides.setdefault("arms", list(robot.arms))
        overrides.setdefault("base_frame", "world")
    params = load_params_file(args.params or default_params_file(), overrides=overrides)
    if robot is not None and not params.checkpoint and REPO_MODEL.is_dir():
        params.checkpoint = str(REPO_MODEL)
    return params


def _run(args: argparse.Namespace) -> int:
    import os

    from geo4d_core.cli import CommandError

    try:
        from rclpy.executors import MultiThreadedExecutor

        from geo4d_ros.env import apply_loopback_env
        from geo4d_ros.params import ParamsError
        from geo4d_ros.runner import init_ros, spin_until, stop_on_signals, teardown
        from geo4d_ros.world_model_node import WorldModelNode
    except ImportError as exc:
        raise CommandError(f"needs rclpy and the ROS messages: pip install -e '.[ros]' ({exc})") from exc

    if args.discovery_range == "LOCALHOST":
        apply_loopback_env(domain_id=args.domain_id)
    else:
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = args.discovery_range
        if args.domain_id is not None:
            os.environ["ROS_DOMAIN_ID"] = str(args.domain_id)
    init_ros()
    with stop_on_signals() as stop:  # after rclpy.init (runner.init_ros)
        nodes: list = []
        executor = None
        try:
            if args.sim:
                try:
                    from geo4d_ros.sim_robot_node import SimRobotNode, SimRobotNodeParams
                except ImportError as exc:
                    raise CommandError(f"--sim needs Drake: pip install -e '.[sim]' ({exc})") from exc
                sim_params = SimRobotNodeParams(task=args.sim, seed=args.seed, max_cycles=args.max_cycles,
                                                max_seconds=args.max_seconds,
                                                camera_n_namespace=args.camera_n or "camera_n",
                                                camera_m_namespace=args.camera_m or "camera_m")
                nodes.append(SimRobotNode(sim_params, start=False))
            sim_node = nodes[0] if nodes else None
            try:
                params = build_params(args, sim_node)
            except (ParamsError, argparse.ArgumentTypeError, FileNotFoundError) as exc:
                raise CommandError(str(exc)) from exc
            world_model = WorldModelNode(params)
            nodes.append(world_model)
            executor = MultiThreadedExecutor()
            for node in nodes:
                executor.add_node(node)
            if stop.is_set():
                return 0
            if sim_node is not None:
                sim_node.start()
            print(f"geo4d bringup: {', '.join(n.get_name() for n in nodes)} running "
                  f"(ROS_DOMAIN_ID={os.environ.get('ROS_DOMAIN_ID', '0')}); Ctrl-C stops", flush=True)
            spin_until(executor, stop, sim_node.done if sim_node is not None else None)
            if sim_node is not None and sim_node.result is not None:
                print(json.dumps({"result": sim_node.result, "world_model": world_model.status()}, indent=2))
            return 0
        finally:
            teardown(nodes, executor)
