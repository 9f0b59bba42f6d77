"""The Drake station shared by all tasks: table, Franka Panda arm(s) and hand(s), task objects,
position-controlled joints, and RGB-D-label cameras.

World frame W: origin at the table centre, +z up, table top at z = 0 (metres). Arms stand on the
table's -x side facing +x; the paper's cameras look from the +x side (`geo4d_core.data.cameras`).

Control: every arm and finger joint has Drake's built-in PD controller (discrete SAP plant); a
`JointTargetSource` per arm feeds the desired joint positions and velocities. Gravity is disabled on
the robots, as on a gravity-compensated real arm, so the PD loop only tracks the plan.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np
from pydrake.geometry import (
    AddCompliantHydroelasticProperties,
    AddContactMaterial,
    Box,
    ClippingRange,
    CollisionFilterDeclaration,
    ColorRenderCamera,
    DepthRange,
    DepthRenderCamera,
    GeometrySet,
    MakeRenderEngineVtk,
    ProximityProperties,
    RenderCameraCore,
    RenderEngineVtkParams,
    RenderLabel,
    Role,
)
from pydrake.math import RigidTransform
from pydrake.multibody.plant import (
    AddMultibodyPlant,
    CoulombFriction,
    MultibodyPlant,
    MultibodyPlantConfig,
)
from pydrake.multibody.parsing import Parser
from pydrake.multibody.tree import ModelInstanceIndex, PdControllerGains, SpatialInertia
from pydrake.systems.framework import BasicVector, Diagram, DiagramBuilder, LeafSystem
from pydrake.systems.sensors import CameraInfo, RgbdSensor

from geo4d_core.data import CameraFrame, CameraSpec
from sim.drake_models import map_drake_models

if TYPE_CHECKING:
    from sim.tasks.base import Task

class _DropHarmlessVtkWarnings(logging.Filter):
    """VTK warns once per render engine that the Panda and YCB glTF files use the KHR_texture_basisu
    extension (compressed textures); the PNG fallbacks render fine, so the warning is noise."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "KHR_texture_basisu" not in record.getMessage()


logging.getLogger("drake").addFilter(_DropHarmlessVtkWarnings())

PANDA_URL = "package://drake_models/franka_description/urdf/panda_arm_hand.urdf"
ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER_JOINTS = ("panda_finger_joint1", "panda_finger_joint2")
# A comfortable joint configuration with the hand above the table, pointing down.
HOME_Q = np.array([0.0, -0.6, 0.0, -2.3, 0.0, 1.7, 0.785])
MAX_FINGER_WIDTH = 0.08  # metres between the fingers when fully open
TABLE_SIZE = (1.2, 0.9, 0.04)  # x, y, z extent of the table slab, metres
BACKGROUND_LABEL = int(RenderLabel.kDontCare)  # label of pixels that see nothing


@dataclass
class SceneConfig:
    """Physics and control settings of the station."""

    time_step: float = 0.002  # discrete plant step, seconds
    contact_model: str = "hydroelastic_with_fallback"  # Drake contact model
    arm_kp: float = 600.0  # PD stiffness of the arm joints, N·m/rad
    arm_kd: float = 60.0  # PD damping of the arm joints, N·m·s/rad
    finger_kp: float = 2000.0  # PD stiffness of the finger joints, N/m (force saturates at the URDF limit, 20 N)
    finger_kd: float = 30.0  # PD damping of the finger joints, N·s/m
    friction: float = 1.0  # static and dynamic friction of pads, objects and table
    hydroelastic_modulus: float = 5e6  # compliant hydroelastic modulus of pads and objects, Pa
    depth_range: tuple[float, float] = (0.05, 4.0)  # valid depth of the cameras, metres


@dataclass
class Arm:
    """One Panda arm with its hand, and the source of its joint targets."""

    name: str  # "arm" for single-arm tasks, "left" / "right" for bimanual ones
    instance: ModelInstanceIndex  # the arm+hand model instance in the plant
    X_WB: np.ndarray  # (4, 4) pose of the arm base (panda_link0) in the world
    targets: "JointTargetSource"  # feeds the PD controllers


@dataclass
class Station:
    """A built station: the diagram and handles to what tasks and recorders need."""

    diagram: Diagram  # the whole system
    plant: MultibodyPlant  # the multibody plant
    arms: list[Arm]  # the arms, in task order
    objects: dict[str, object]  # task object name -> Body
    sensors: dict[str, RgbdSensor]  # camera name -> sensor
    cameras: dict[str, CameraSpec]  # camera name -> spec (K, X_WC, size, split)
    label_parts: dict[str, list[int]]  # semantic part -> render label values
    config: SceneConfig = field(default_factory=SceneConfig)  # physics and control settings

    def arm(self, name: str) -> Arm:
        """The arm called `name`."""
        for arm in self.arms:
            if arm.name == name:
                return arm
        raise KeyError(f"no arm named {name!r}; arms: {[a.name for a in self.arms]}")

    def render(self, root_context, camera: str) -> CameraFrame:
        """Colour (uint8), depth (float32 metres, 0 = invalid) and labels (int32) of one camera."""
        sensor = self.sensors[camera]
        ctx = sensor.GetMyContextFromRoot(root_context)
        color = np.array(sensor.color_image_output_port().Eval(ctx).data)[..., :3]
        depth = np.array(sensor.depth_image_32F_output_port().Eval(ctx).data)[..., 0]
        label = np.array(sensor.label_image_output_port().Eval(ctx).data)[..., 0].astype(np.int32)
        depth = np.where(np.isfinite(depth), depth, 0.0).astype(np.float32)
        return CameraFrame(np.ascontiguousarray(color), depth, label)

    def render_label(self, root_context, camera: str) -> np.ndarray:
        """(H, W) int32 render labels of one camera (label_parts names them); no colour or depth."""
        sensor = self.sensors[camera]
        return np.array(sensor.label_image_output_port().Eval(sensor.GetMyContextFromRoot(root_context)).data)[
            ..., 0].astype(np.int32)


class JointTargetSource(LeafSystem):
    """Desired state [q; v] (9 + 9) of one arm and hand, from a function of time.

    `set_plan(fn)` installs `fn(t) -> (q_arm (7,), v_arm (7,), finger_width_m)`; before any plan the
    source holds `hold_q` with the hand open. Finger width is split equally between the two fingers.
    """

    def __init__(self, hold_q: np.ndarray):
        super().__init__()
        self._fn: Callable[[float], tuple[np.ndarray, np.ndarray, float]] | None = None
        self._hold = np.asarray(hold_q, dtype=float)
        self.DeclareVectorOutputPort("desired_state", BasicVector(18), self._calc)

    def set_plan(self, fn: Callable[[float], tuple[np.ndarray, np.ndarray, float]] | None) -> None:
        """Install the plan (a function of simulation time in seconds), or None to hold."""
        self._fn = fn

    def _calc(self, context, output) -> None:
        if self._fn is None:
            q, v, width = self._hold, np.zeros(7), MAX_FINGER_WIDTH
        else:
            q, v, width = self._fn(context.get_time())
        half = 0.5 * float(np.clip(width, 0.0, MAX_FINGER_WIDTH))
        output.SetFromVector(np.concatenate([q, [half, half], v, [0.0, 0.0]]))


def proximity(config: SceneConfig, compliant: bool = True) -> ProximityProperties:
    """Contact properties for task objects and pads: compliant hydroelastic with the station friction."""
    props = ProximityProperties()
    AddContactMaterial(friction=CoulombFriction(config.friction, config.friction), properties=props)
    if compliant:
        AddCompliantHydroelasticProperties(0.01, config.hydroelastic_modulus, props)
    return props


def add_box_body(plant: MultibodyPlant, name: str, size, mass: float, color, config: SceneConfig,
                 instance: ModelInstanceIndex | None = None, X_WB: np.ndarray | None = None):
    """A box body (welded to the world at X_WB when given, otherwise free) with visual + collision."""
    instance = instance if instance is not None else plant.AddModelInstance(name)
    body = plant.AddRigidBody(name, instance, SpatialInertia.SolidBoxWithMass(mass, *size))
    plant.RegisterVisualGeometry(body, RigidTransform(), Box(*size), f"{name}_visual", np.asarray(color, float))
    plant.RegisterCollisionGeometry(body, RigidTransform(), Box(*size), f"{name}_collision",
                                    proximity(config, compliant=X_WB is None))
    if X_WB is not None:
        plant.WeldFrames(plant.world_frame(), body.body_frame(), RigidTransform(X_WB))
    return body


def _add_gripper_collision_boxes(plant: MultibodyPlant, instance: ModelInstanceIndex, config: SceneConfig) -> None:
    """Collision boxes that follow the real hand closely: compliant pads on the finger tips (contact
    patches instead of single points; the finger gap equals the commanded width, pad faces at the finger
    frame's y = 0) and a palm box ending at the finger base. The URDF's coarse spheres (5 cm spheres
    reaching 2 cm short of the finger tips) are filtered out of collisions after Finalize
    (`_urdf_gripper_spheres`)."""
    hand = plant.GetBodyByName("panda_hand", instance)
    plant.RegisterCollisionGeometry(hand, RigidTransform([0.0, 0.0, 0.029]), Box(0.06, 0.20, 0.058), "panda_hand_palm",
                                    proximity(config))
    for name, sign in (("panda_leftfinger", 1.0), ("panda_rightfinger", -1.0)):
        body = plant.GetBodyByName(name, instance)
        # Finger frame: the inner face looks along -sign*y; the tip spans about z in [0.033, 0.057].
        X_FP = RigidTransform([0.0, sign * 0.004, 0.045])
        plant.RegisterCollisionGeometry(body, X_FP, Box(0.018, 0.008, 0.024), f"{name}_pad", proximity(config))


def _urdf_gripper_spheres(plant: MultibodyPlant, scene_graph, instance: ModelInstanceIndex) -> list:
    """The URDF's collision spheres of the hand and the two fingers (everything but our boxes)."""
    inspector = scene_graph.model_inspector()
    out = []
    for name in ("panda_hand", "panda_leftfinger", "panda_rightfinger"):
        for gid in plant.GetCollisionGeometriesForBody(plant.GetBodyByName(name, instance)):
            if not inspector.GetName(gid).endswith(("_pad", "_palm")):
                out.append(gid)
    return out


def _panda(plant: MultibodyPlant, parser: Parser, name: str, X_WB: np.ndarray, config: SceneConfig):
    instance = parser.AddModelsFromUrl(PANDA_URL)[0]
    plant.RenameModelInstance(instance, name)
    plant.WeldFrames(plant.world_frame(), plant.GetFrameByName("panda_link0", instance), RigidTransform(X_WB))
    plant.mutable_gravity_field().set_enabled(instance, False)
    _add_gripper_collision_boxes(plant, instance, config)
    for index in plant.GetJointActuatorIndices():  # the per-instance overload is empty before Finalize
        actuator = plant.get_mutable_joint_actuator(index)
        if actuator.model_instance() != instance:
            continue
        finger = actuator.joint().name() in FINGER_JOINTS
        gains = (config.finger_kp, config.finger_kd) if finger else (config.arm_kp, config.arm_kd)
        actuator.set_controller_gains(PdControllerGains(p=gains[0], d=gains[1]))
    return instance


def camera_sensor(spec: CameraSpec, scene_graph, config: SceneConfig) -> RgbdSensor:
    """An RgbdSensor rendering `spec` (K in pixels, X_WC with OpenCV axes, as Drake's sensor frame).

    geo4d puts pixel centres at integer coordinates (DESIGN.md §3); Drake's CameraInfo measures the
    principal point from the image corner, with pixel centres at +0.5, hence the half-pixel shift
    (checked by tests/sim/test_scene.py: table-top depth lifts to z = 0 exactly).
    """
    K = spec.K
    info = CameraInfo(spec.width, spec.height, K[0, 0], K[1, 1], K[0, 2] + 0.5, K[1, 2] + 0.5)
    near, far = config.depth_range
    core = RenderCameraCore("vtk", info, ClippingRange(near * 0.5, far * 1.5), RigidTransform())
    return RgbdSensor(
        scene_graph.world_frame_id(),
        RigidTransform(spec.X_WC),
        ColorRenderCamera(core, False),
        DepthRenderCamera(core, DepthRange(near, far)),
    )


def _label_of_body(plant: MultibodyPlant, scene_graph, body) -> list[int]:
    inspector = scene_graph.model_inspector()
    labels = set()
    for gid in plant.GetVisualGeometriesForBody(body):
        props = inspector.GetPerceptionProperties(gid)
        if props is not None and props.HasProperty("label", "id"):
            labels.add(int(props.GetProperty("label", "id")))
    return sorted(labels)


def build_station(task: "Task", cameras: list[CameraSpec] | tuple = (), config: SceneConfig | None = None) -> Station:
    """Build the station for `task` with the given cameras (none: physics only, no renderer)."""
    config = config or SceneConfig()
    builder = DiagramBuilder()
    plant, scene_graph = AddMultibodyPlant(
        MultibodyPlantConfig(time_step=config.time_step, contact_model=config.contact_model,
                             discrete_contact_approximation="sap"),
        builder,
    )
    parser = Parser(plant)
    map_drake_models(parser)
    table_X = np.eye(4)
    table_X[2, 3] = -TABLE_SIZE[2] / 2
    add_box_body(plant, "table", TABLE_SIZE, 50.0, [0.55, 0.42, 0.3, 1.0], config, X_WB=table_X)
    arm_bases = task.arm_bases()
    instances = [_panda(plant, parser, name, X_WB, config) for name, X_WB in arm_bases.items()]
    objects = task.add_objects(plant, parser, config)
    plant.Finalize()
    everything = GeometrySet(scene_graph.model_inspector().GetAllGeometryIds(Role.kProximity))
    for instance in instances:
        spheres = GeometrySet(_urdf_gripper_spheres(plant, scene_graph, instance))
        scene_graph.collision_filter_manager().Apply(CollisionFilterDeclaration().ExcludeBetween(spheres, everything))

    arms = []
    for (name, X_WB), instance in zip(arm_bases.items(), instances):
        targets = builder.AddSystem(JointTargetSource(HOME_Q))
        targets.set_name(f"{name}_targets")
        builder.Connect(targets.get_output_port(), plant.get_desired_state_input_port(instance))
        arms.append(Arm(name, instance, np.asarray(X_WB, float), targets))

    sensors = {}
    if cameras:
        scene_graph.AddRenderer("vtk", MakeRenderEngineVtk(RenderEngineVtkParams()))
        for spec in cameras:
            sensor = builder.AddSystem(camera_sensor(spec, scene_graph, config))
            sensor.set_name(f"camera_{spec.name}")
            builder.Connect(scene_graph.get_query_output_port(), sensor.query_object_input_port())
            sensors[spec.name] = sensor
    diagram = builder.Build()

    label_parts: dict[str, list[int]] = {"background": [BACKGROUND_LABEL], "table": _label_of_body(
        plant, scene_graph, plant.GetBodyByName("table"))}
    for part, body_name in (("hand", "panda_hand"), ("left_finger", "panda_leftfinger"),
                            ("right_finger", "panda_rightfinger")):
        for arm in arms:
            labels = _label_of_body(plant, scene_graph, plant.GetBodyByName(body_name, arm.instance))
            label_parts.setdefault(part, []).extend(labels)
            label_parts[f"{arm.name}/{part}"] = labels
    for arm in arms:
        links = [plant.get_body(i) for i in plant.GetBodyIndices(arm.instance)]
        robot = sorted({lab for b in links if b.name().startswith("panda_link") for lab in _label_of_body(plant, scene_graph, b)})
        label_parts.setdefault("robot", []).extend(robot)
        label_parts[f"{arm.name}/robot"] = robot
    label_parts["gripper"] = sorted(label_parts["hand"] + label_parts["left_finger"] + label_parts["right_finger"])
    for name, body in objects.items():
        label_parts[name] = _label_of_body(plant, scene_graph, body)
    return Station(diagram, plant, arms, objects, sensors, {c.name: c for c in cameras}, label_parts, config)
