"""StoreCerealBoxUnderShelf: one arm picks a cereal box standing on top of a shelf and inserts it into
the shelf's compartment below.

Objects:
- shelf: a low open-front shelf built from primitive boxes and welded to the table (world W: table top
  at z = 0, metres). It has the footprint and boards of drake_models' `manipulation_station/shelves.sdf`
  (0.30 m deep, 0.60 m wide, 1.6 cm boards, side walls and a back) but a single compartment, 0.32 m
  high, whose top board (upper surface at z = 0.352 m) is the shelf top. The model set's shelf is
  0.8 m tall: its top (0.815 m) is out of reach of a table-mounted Panda carrying a box into the
  compartment below, and the tall cabinet would hide most of the table from the paper's cameras (they
  look at the table centre from the +x side). The opening faces the robot (world -x); the front edge
  of the boards is at x = SHELF_FRONT_X.
- cereal box: the YCB cracker box `package://drake_models/ycb/003_cracker_box.sdf` (0.158 × 0.207 ×
  0.066 m, 0.411 kg); its collision box is made compliant-hydroelastic here (see
  `_make_box_compliant`). It starts standing upright on the shelf top (long axis vertical, the thin
  6.6 cm side across world y so that the open hand, 8 cm, fits around it), its centre jittered by
  ±2 cm in x and ±5 cm in y, its yaw by ±0.2 rad.

Arm: one Panda at x = ARM_BASE_X on the table's -x side.

Expert (planned from the box's settled pose): E's +z points away from the robot along the box's
15.8 cm axis, pitched PITCH below the horizontal (the Panda's wrist cannot hold the hand horizontal
this low and this close); the pads close across the 6.6 cm side, GRASP_DEPTH past the box's near end and
GRASP_BELOW_TOP below its top. Lift 3 cm, pull back off the shelf top while turning square to the shelf,
lower in front of the compartment, slide in until the box centre is INSERT_CENTRE_X (the arm's wrist
reaches the top board's front edge beyond that), set down, release, retreat.

Success: the box's centre lies inside the compartment's inner volume (between the side walls, between
the front edge and the back wall, above the bottom board and below the top board) and the box has come
to rest (speed < 5 cm/s).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydrake.geometry import Box, Role, RoleAssign
from pydrake.math import RigidTransform, RollPitchYaw, RotationMatrix
from pydrake.multibody.plant import MultibodyPlant
from pydrake.multibody.tree import SpatialInertia

from geo4d_core.geometry import make_pose
from sim.control import ArmKinematics, PlanningError
from sim.scene import HOME_Q, SceneConfig, Station, proximity
from sim.tasks.base import DemoPlan, Outcome, Task, Waypoint

CEREAL_BOX_URL = "package://drake_models/ycb/003_cracker_box.sdf"
CEREAL_BOX_BODY = "base_link_cracker"
# Cracker box extents along its own axes O (metres): x across the label (front view width), y from top
# to bottom (+y towards the bottom), z through the label (thin side).
BOX_SIZE = (0.158, 0.2074, 0.0658)

SHELF_FRONT_X = 0.12  # world x of the shelf's open front (robot side), metres
SHELF_DEPTH = 0.30  # outer extent along world x, metres
SHELF_WIDTH = 0.60  # outer extent along world y (centred on y = 0), metres
BOARD = 0.016  # thickness of boards and walls, metres
COMPARTMENT_HEIGHT = 0.32  # clear height between the bottom board and the top board, metres
SHELF_TOP_Z = 2 * BOARD + COMPARTMENT_HEIGHT  # upper surface of the top board (where the box starts), metres

# Inner volume of the compartment in W (metres): [lower corner, upper corner].
COMPARTMENT_LO = np.array([SHELF_FRONT_X, -(SHELF_WIDTH / 2 - BOARD), BOARD])
COMPARTMENT_HI = np.array([SHELF_FRONT_X + SHELF_DEPTH - BOARD, SHELF_WIDTH / 2 - BOARD, BOARD + COMPARTMENT_HEIGHT])

ARM_BASE_X = -0.55  # world x of the arm base (panda_link0), on the table's -x side, metres
OPEN = 0.08  # finger opening while approaching and releasing, metres
GRASP_DEPTH = 0.035  # how far E (between the pads) reaches past the box's near end, metres
GRASP_BELOW_TOP = 0.037  # height of E below the box's top face at the grasp, metres
PITCH = np.deg2rad(55.0)  # E's +z points this far below the horizontal, radians
LIFT = 0.03  # how far the box is lifted off the shelf top before pulling it back, metres
FLOOR_CLEARANCE = 0.03  # height of the box's bottom above the bottom board while inserting, metres
INSERT_CENTRE_X = SHELF_FRONT_X + 0.065  # world x of the box centre once inserted, metres
REST_SPEED = 0.05  # the box counts as at rest below this speed, m/s


def _shelf_parts() -> list[tuple[str, np.ndarray, tuple[float, float, float]]]:
    """(name, centre in W (metres), box size (metres)) of the shelf's boards and walls."""
    cx = SHELF_FRONT_X + SHELF_DEPTH / 2
    height = SHELF_TOP_Z
    side_y = SHELF_WIDTH / 2 - BOARD / 2
    return [
        ("bottom", np.array([cx, 0.0, BOARD / 2]), (SHELF_DEPTH, SHELF_WIDTH, BOARD)),
        ("top", np.array([cx, 0.0, SHELF_TOP_Z - BOARD / 2]), (SHELF_DEPTH, SHELF_WIDTH, BOARD)),
        ("left_wall", np.array([cx, side_y, height / 2]), (SHELF_DEPTH, BOARD, height)),
        ("right_wall", np.array([cx, -side_y, height / 2]), (SHELF_DEPTH, BOARD, height)),
        ("back", np.array([SHELF_FRONT_X + SHELF_DEPTH - BOARD / 2, 0.0, height / 2]), (BOARD, SHELF_WIDTH, height)),
    ]


def _make_box_compliant(plant: MultibodyPlant, scene_graph, body, config: SceneConfig) -> None:
    """Give the cracker box's SDF collision box the station's compliant hydroelastic properties and drop
    its corner point spheres. The SDF declares no hydroelastic properties, so against the finger pads it
    would fall back to single point contacts, which carry no torsional friction: the box, held off-centre,
    pivots out of the grasp. A compliant box gets contact patches against pads and shelf alike."""
    inspector = scene_graph.model_inspector()
    for gid in plant.GetCollisionGeometriesForBody(body):
        if inspector.GetName(gid).endswith("box_collision"):
            scene_graph.AssignRole(plant.get_source_id(), gid, proximity(config), RoleAssign.kReplace)
        else:
            scene_graph.RemoveRole(plant.get_source_id(), gid, Role.kProximity)


class StoreCerealBoxUnderShelf(Task):
    """Pick the cereal box from the top of the shelf and insert it into the compartment below."""

    name: ClassVar[str] = "StoreCerealBoxUnderShelf"
    default_episodes: ClassVar[int] = 25

    def arm_bases(self) -> dict[str, np.ndarray]:
        X = np.eye(4)
        X[:3, 3] = [ARM_BASE_X, 0.0, 0.0]
        return {"arm": X}

    def add_objects(self, plant: MultibodyPlant, parser, config: SceneConfig) -> dict[str, object]:
        shelf_instance = plant.AddModelInstance("shelf")
        shelf = plant.AddRigidBody("shelf", shelf_instance, SpatialInertia.SolidBoxWithMass(
            10.0, SHELF_DEPTH, SHELF_WIDTH, SHELF_TOP_Z))
        color = np.array([0.72, 0.6, 0.45, 1.0])
        for part, p_W, size in _shelf_parts():
            X = RigidTransform(p_W)  # the shelf body frame coincides with W (welded at identity)
            plant.RegisterVisualGeometry(shelf, X, Box(*size), f"shelf_{part}_v", color)
            plant.RegisterCollisionGeometry(shelf, X, Box(*size), f"shelf_{part}_c", proximity(config, compliant=False))
        plant.WeldFrames(plant.world_frame(), shelf.body_frame(), RigidTransform())
        box_instance = parser.AddModelsFromUrl(CEREAL_BOX_URL)[0]
        plant.RenameModelInstance(box_instance, "cereal_box")
        cereal_box = plant.GetBodyByName(CEREAL_BOX_BODY, box_instance)
        _make_box_compliant(plant, parser.scene_graph(), cereal_box, config)
        return {"shelf": shelf, "cereal_box": cereal_box}

    def randomize(self, station: Station, plant_context, rng: np.random.Generator) -> None:
        """Box upright on the shelf top: its +y (towards its bottom) along world -z, its thin z axis
        across world y, then yawed by up to ±0.2 rad; centre jittered ±2 cm in x and ±5 cm in y."""
        yaw = rng.uniform(-0.2, 0.2)
        p = np.array([SHELF_FRONT_X + 0.105 + rng.uniform(-0.02, 0.02), rng.uniform(-0.05, 0.05),
                      SHELF_TOP_Z + BOX_SIZE[1] / 2 + 0.001])
        R_WO = RotationMatrix(RollPitchYaw(0.0, 0.0, yaw)) @ RotationMatrix(RollPitchYaw(-np.pi / 2, 0.0, 0.0))
        station.plant.SetFreeBodyPose(plant_context, station.objects["cereal_box"], RigidTransform(R_WO, p))

    def plan(self, station: Station, plant_context) -> DemoPlan:
        """Waypoints of E (world frame, metres) from the box's settled pose X_WO (box centre, axes as in
        the SDF).

        The Panda cannot hold its hand horizontal this low and this close to its base (the wrist joint
        would pass its limit), so E's +z points away from the robot and PITCH radians down; the pads
        pinch the box's thin sides just below its top, GRASP_DEPTH past its near end, which keeps the
        pitched palm clear of the box. Raises PlanningError when the box fell over or is out of reach.
        """
        X_WO = station.plant.EvalBodyPoseInWorld(plant_context, station.objects["cereal_box"]).GetAsMatrix4()
        R_WO, p_WO = X_WO[:3, :3], X_WO[:3, 3]
        if abs(R_WO[2, 1]) < 0.9:
            raise PlanningError(f"cereal box is not standing upright (its long axis is {np.round(R_WO[:, 1], 2).tolist()})")
        # a: the box's horizontal 15.8 cm axis, pointing away from the robot (+x).
        a = R_WO[:, 0].copy()
        a[2] = 0.0
        a /= np.linalg.norm(a)
        if a[0] < 0:
            a = -a
        z_up = np.array([0.0, 0.0, 1.0])
        box_top = p_WO[2] + BOX_SIZE[1] / 2
        box_bottom = p_WO[2] - BOX_SIZE[1] / 2
        p_grasp = p_WO - (BOX_SIZE[0] / 2 - GRASP_DEPTH) * a
        p_grasp[2] = box_top - GRASP_BELOW_TOP
        grip_above_bottom = p_grasp[2] - box_bottom  # E's height above the box's bottom face
        kin = ArmKinematics(station.arm("arm").X_WB)

        def frame(direction: np.ndarray, y_sign: float) -> np.ndarray:
            """E's rotation: +z along the horizontal `direction` pitched down by PITCH, +y horizontal
            (across the box)."""
            z = np.cos(PITCH) * direction - np.sin(PITCH) * z_up
            y = y_sign * np.cross(z_up, direction)
            return np.column_stack([np.cross(y, z), y, z])

        ex = np.array([1.0, 0.0, 0.0])
        far_length = BOX_SIZE[0] - GRASP_DEPTH  # box length ahead of E, metres
        z_insert = BOARD + FLOOR_CLEARANCE + grip_above_bottom
        x_insert = INSERT_CENTRE_X - (BOX_SIZE[0] / 2 - GRASP_DEPTH)
        x_front = SHELF_FRONT_X - far_length - 0.03  # box's far end 3 cm in front of the shelf
        p_insert = np.array([x_insert, 0.0, z_insert])
        # Pick the roll (fingers along ±y) that the arm reaches at both grasp and insertion.
        best = None
        for y_sign in (1.0, -1.0):
            try:
                q1 = kin.ik(make_pose(frame(a, y_sign), p_grasp), HOME_Q)
                q2 = kin.ik(make_pose(frame(ex, y_sign), p_insert), q1)
            except PlanningError:
                continue
            cost = np.linalg.norm(q1 - HOME_Q) + np.linalg.norm(q2 - q1)
            if best is None or cost < best[0]:
                best = (cost, y_sign)
        if best is None:
            raise PlanningError("no reachable grasp of the cereal box")
        y_sign = best[1]
        R_grasp, R_insert = frame(a, y_sign), frame(ex, y_sign)

        p_lift = p_grasp + [0.0, 0.0, LIFT]
        p_back = np.array([x_front, 0.5 * p_grasp[1], p_lift[2]])
        p_front = np.array([x_front, 0.0, z_insert])
        p_down = p_insert - [0.0, 0.0, FLOOR_CLEARANCE - 0.01]
        p_out = p_down + np.array([-0.12, 0.0, 0.08])
        # (seconds to reach, pose, finger opening): slow where the box's inertia could twist it in the
        # grasp (the pads hold it GRASP_DEPTH from its near end, so it is carried off-centre).
        steps = [
            (2.0, make_pose(R_grasp, p_grasp - 0.12 * a + [0.0, 0.0, 0.06]), OPEN),
            (1.2, make_pose(R_grasp, p_grasp), OPEN),
            (0.6, make_pose(R_grasp, p_grasp), 0.0),
            (0.8, make_pose(R_grasp, p_lift), 0.0),
            (1.5, make_pose(R_insert, p_back), 0.0),
            (1.6, make_pose(R_insert, p_front + [0.0, 0.0, 0.05]), 0.0),
            (0.8, make_pose(R_insert, p_front), 0.0),
            (0.3, make_pose(R_insert, p_front), 0.0),
            (1.6, make_pose(R_insert, p_insert), 0.0),
            (0.4, make_pose(R_insert, p_down), 0.0),
            (0.5, make_pose(R_insert, p_down), OPEN),
            (1.2, make_pose(R_insert, p_out), OPEN),
        ]
        wps, t = [], 0.0
        for duration, X_WE, width in steps:
            t += duration
            wps.append(Waypoint(t, X_WE, width))
        return DemoPlan({"arm": wps}, duration=t + 1.0, notes={"y_sign": y_sign})

    def success(self, station: Station, plant_context) -> Outcome:
        plant = station.plant
        body = station.objects["cereal_box"]
        p = plant.EvalBodyPoseInWorld(plant_context, body).translation()
        speed = np.linalg.norm(plant.EvalBodySpatialVelocityInWorld(plant_context, body).translational())
        where = f"x={p[0]:.3f}, y={p[1]:.3f}, z={p[2]:.3f} m"
        if p[2] >= COMPARTMENT_HI[2]:
            return Outcome(False, f"cereal box not under the shelf top (centre at {where})")
        if not (np.all(p >= COMPARTMENT_LO) and np.all(p <= COMPARTMENT_HI)):
            return Outcome(False, f"cereal box outside the compartment (centre at {where})")
        if speed > REST_SPEED:
            return Outcome(False, f"cereal box still moving ({speed:.3f} m/s)")
        return Outcome(True, f"cereal box resting in the compartment at {where}")
