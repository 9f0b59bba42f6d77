"""PutSpatulaOnTable: one arm takes a spatula out of a utensil crock and lays it on the left side of
the table (world +y side).

Objects (built from primitives; the model set has no spatula or crock):
- crock: an open cylinder of 16 wall staves on a base, inner radius 5.5 cm, 12 cm tall, 1.5 kg, free.
- spatula: a 20 cm handle (2.0 × 1.2 cm), a neck and a 6 × 7 cm blade, 80 g, free; it starts
  standing blade-down in the crock, leaning on the rim to a random side (world ±y, up to 35° towards the robot).

Success: the spatula lies on the table (centre of mass below 4 cm, out of the crock) with its centre in
the left region (y > 0.15 m, |x| < 0.45 m) and has come to rest (speed < 5 cm/s).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydrake.geometry import Box, Cylinder
from pydrake.math import RigidTransform, RollPitchYaw
from pydrake.multibody.tree import SpatialInertia, UnitInertia

from geo4d_core.geometry import make_pose
from sim.control import ArmKinematics, PlanningError
from sim.scene import HOME_Q, SceneConfig, Station, proximity
from sim.tasks.base import DemoPlan, Outcome, Task, Waypoint

CROCK_RADIUS = 0.055  # inner radius, metres
CROCK_HEIGHT = 0.12  # metres
HANDLE = (0.020, 0.012, 0.20)  # handle box size (x, y along the grip, z along the axis), metres
BLADE = (0.060, 0.004, 0.070)  # blade box size, metres
SPATULA_LENGTH = HANDLE[2] + 0.02 + BLADE[2]  # tip of the blade to the end of the handle, metres
COM_FROM_TIP = 0.16  # centre of mass, metres from the blade tip along the handle
GRIP_FROM_TIP = SPATULA_LENGTH - 0.04  # where the expert grasps the handle, metres from the tip
LEFT_REGION_Y = 0.15  # the table's left region starts here (world y, metres)
P_REST_W = np.array([0.17, 0.26, 0.0])  # where the expert lays the spatula's centre of mass, metres
OPEN = 0.08  # finger opening, metres
# Joint-space moves whose hand rises above this (world z, metres) leave the cameras' view: the expert
# prefers grasp variants whose moves stay below it.
ARC_MAX_Z = 0.6


def _joint_move_max_z(kin: ArmKinematics, q0: np.ndarray, q1: np.ndarray, samples: int = 21) -> float:
    """Highest world z of E (metres) along the straight joint-space path q0 -> q1, the path a single
    joint-space move follows (`sim.control.plan_arm_trajectory`)."""
    return max(float(kin.fk(q0 + s * (q1 - q0))[2, 3]) for s in np.linspace(0.0, 1.0, samples))


def _spatula_geometry():
    """(pose in the spatula frame S, box size, colour) of the parts; S at the blade tip, +z along the
    handle, +y across the blade's thin side."""
    blade_z = BLADE[2] / 2
    neck_z = BLADE[2] + 0.01
    handle_z = BLADE[2] + 0.02 + HANDLE[2] / 2
    return [
        (RigidTransform([0, 0, blade_z]), BLADE, [0.15, 0.15, 0.15, 1.0]),
        (RigidTransform([0, 0, neck_z]), (0.012, 0.006, 0.02), [0.2, 0.2, 0.2, 1.0]),
        (RigidTransform([0, 0, handle_z]), HANDLE, [0.85, 0.35, 0.1, 1.0]),
    ]


class PutSpatulaOnTable(Task):
    """Take the spatula out of the crock and lay it on the table's left side."""

    name: ClassVar[str] = "PutSpatulaOnTable"
    default_episodes: ClassVar[int] = 22

    def arm_bases(self) -> dict[str, np.ndarray]:
        X = np.eye(4)
        X[:3, 3] = [-0.45, 0.0, 0.0]
        return {"arm": X}

    def add_objects(self, plant, parser, config: SceneConfig) -> dict[str, object]:
        crock_instance = plant.AddModelInstance("crock")
        crock = plant.AddRigidBody("crock", crock_instance, SpatialInertia.MakeFromCentralInertia(
            1.5, np.array([0.0, 0.0, 0.04]),
            UnitInertia.SolidCylinder(CROCK_RADIUS + 0.01, CROCK_HEIGHT, [0, 0, 1]) * 1.5))
        color = np.array([0.35, 0.45, 0.6, 1.0])
        base = RigidTransform([0, 0, 0.005])
        plant.RegisterVisualGeometry(crock, base, Cylinder(CROCK_RADIUS + 0.01, 0.01), "crock_base_v", color)
        plant.RegisterCollisionGeometry(crock, base, Cylinder(CROCK_RADIUS + 0.01, 0.01), "crock_base_c", proximity(config))
        n = 16
        stave_w = 2 * (CROCK_RADIUS + 0.005) * np.tan(np.pi / n) + 0.002
        for i in range(n):
            a = 2 * np.pi * i / n
            X = RigidTransform(RollPitchYaw(0, 0, a), [(CROCK_RADIUS + 0.005) * np.cos(a),
                                                       (CROCK_RADIUS + 0.005) * np.sin(a), CROCK_HEIGHT / 2])
            size = (0.01, stave_w, CROCK_HEIGHT)
            plant.RegisterVisualGeometry(crock, X, Box(*size), f"crock_wall{i}_v", color)
            plant.RegisterCollisionGeometry(crock, X, Box(*size), f"crock_wall{i}_c", proximity(config))
        spatula_instance = plant.AddModelInstance("spatula")
        spatula = plant.AddRigidBody("spatula", spatula_instance, SpatialInertia.MakeFromCentralInertia(
            0.08, np.array([0.0, 0.0, COM_FROM_TIP]), UnitInertia.SolidBox(0.03, 0.01, SPATULA_LENGTH) * 0.08))
        for k, (X, size, rgba) in enumerate(_spatula_geometry()):
            plant.RegisterVisualGeometry(spatula, X, Box(*size), f"spatula_part{k}_v", np.array(rgba))
            plant.RegisterCollisionGeometry(spatula, X, Box(*size), f"spatula_part{k}_c", proximity(config))
        return {"crock": crock, "spatula": spatula}

    def randomize(self, station: Station, plant_context, rng: np.random.Generator) -> None:
        plant = station.plant
        p_crock = np.array([rng.uniform(-0.05, 0.1), rng.uniform(-0.2, 0.0), 0.0])
        plant.SetFreeBodyPose(plant_context, station.objects["crock"],
                              RigidTransform(RollPitchYaw(0, 0, rng.uniform(-np.pi, np.pi)), p_crock))
        # Blade tip just off the crock's centre, the spatula tipped over its thin side (its natural
        # falling direction) onto the rim, leaning sideways (±y, up to 35° towards the robot, where the arm
        # reaches the handle).
        azimuth = rng.choice([-1.0, 1.0]) * (np.pi / 2 + rng.uniform(0.0, 0.6))
        towards = np.array([np.cos(azimuth), np.sin(azimuth), 0.0])
        p_tip = p_crock + 0.01 * towards + [0.0, 0.0, 0.011]
        lean = np.arctan2(CROCK_RADIUS - 0.01 - 0.004, CROCK_HEIGHT - 0.011)
        R = RollPitchYaw(0, 0, azimuth - np.pi / 2).ToRotationMatrix() @ RollPitchYaw(-lean, 0, 0).ToRotationMatrix()
        plant.SetFreeBodyPose(plant_context, station.objects["spatula"], RigidTransform(R, p_tip))

    def plan(self, station: Station, plant_context) -> DemoPlan:
        X_WS = station.plant.EvalBodyPoseInWorld(plant_context, station.objects["spatula"]).GetAsMatrix4()
        axis = X_WS[:3, 2]  # up along the handle
        grip_S = np.array([0.0, 0.0, GRIP_FROM_TIP])
        p_grip = X_WS[:3, :3] @ grip_S + X_WS[:3, 3]
        # E: +z along -axis (fingers pointing down the handle), +y across the handle's thin side.
        y_E = X_WS[:3, 1]
        z_E = -axis
        x_E = np.cross(y_E, z_E)
        R_grasp = np.column_stack([x_E, y_E, z_E])
        above = p_grip + 0.12 * axis
        # Pull out: a little along the handle, then straight up until the blade clears the rim.
        pull = p_grip + 0.06 * axis
        out = pull + [0.0, 0.0, 0.24]
        p_carry = np.array([0.0, 0.1, max(out[2], 0.45)])
        # The parallel-jaw grasp is symmetric under a half turn about E's z: take the variant whose whole
        # motion the arm can reach with the least joint travel, among those whose joint-space moves keep
        # the hand below ARC_MAX_Z if there are any (a large reorientation in joint space can swing the
        # hand 30 cm above both of its ends, out of every camera).
        kin = ArmKinematics(station.arm("arm").X_WB)
        best = None
        candidates = [(flip, y_sign) for flip in (np.eye(3), np.diag([-1.0, -1.0, 1.0])) for y_sign in (1.0, -1.0)]
        for flip, y_sign in candidates:
            wps = self._waypoints(R_grasp @ flip, y_sign, p_grip, above, pull, out, p_carry)
            try:
                q, travel, arc_z = HOME_Q, 0.0, 0.0
                for wp in wps:
                    q_next = kin.ik(wp.X_WE, q)
                    travel += float(np.abs(q_next - q).sum())
                    if not wp.straight:
                        arc_z = max(arc_z, _joint_move_max_z(kin, q, q_next))
                    q = q_next
            except PlanningError:
                continue
            key = (arc_z > ARC_MAX_Z, travel)
            if best is None or key < best[0]:
                best = (key, wps)
        if best is None:
            raise PlanningError("no reachable grasp of the spatula handle")
        return DemoPlan({"arm": best[1]}, duration=11.0)

    @staticmethod
    def _waypoints(R_grasp: np.ndarray, y_sign: float, p_grip: np.ndarray, above: np.ndarray, pull: np.ndarray,
                   out: np.ndarray, p_carry: np.ndarray) -> list[Waypoint]:
        """The expert's waypoints for one grasp orientation and one laying orientation (E in the world)."""

        # Lay down: fingers pointing away from the robot (E's z along world +x) so the spatula lies along
        # +x, with E's y horizontal (±world y) so that opening the fingers drops the handle. Place it so
        # its centre of mass lands at P_REST_W.
        y_place = np.array([0.0, y_sign, 0.0])
        z_place = np.array([1.0, 0.0, 0.0])
        R_place = np.column_stack([np.cross(y_place, z_place), y_place, z_place])
        p_place = P_REST_W - (GRIP_FROM_TIP - COM_FROM_TIP) * z_place  # the tip lies along +z_place
        p_place[2] = 0.10
        return [
            Waypoint(2.0, make_pose(R_grasp, above), OPEN, straight=False),
            Waypoint(3.0, make_pose(R_grasp, p_grip), OPEN),
            Waypoint(3.6, make_pose(R_grasp, p_grip), 0.0),
            Waypoint(4.0, make_pose(R_grasp, pull), 0.0),
            Waypoint(4.8, make_pose(R_grasp, out), 0.0),
            Waypoint(5.8, make_pose(R_grasp, p_carry), 0.0, straight=False),
            Waypoint(7.8, make_pose(R_place, p_place + [0, 0, 0.15]), 0.0, straight=False),
            Waypoint(8.8, make_pose(R_place, p_place), 0.0),
            Waypoint(9.3, make_pose(R_place, p_place), OPEN),
            Waypoint(10.3, make_pose(R_place, p_place + [0, 0, 0.15]), OPEN),
        ]

    def success(self, station: Station, plant_context) -> Outcome:
        plant = station.plant
        body = station.objects["spatula"]
        X_WS = plant.EvalBodyPoseInWorld(plant_context, body)
        p_com = X_WS.multiply(np.array([0.0, 0.0, COM_FROM_TIP]))
        speed = np.linalg.norm(plant.EvalBodySpatialVelocityInWorld(plant_context, body).translational())
        if p_com[2] > 0.04:
            return Outcome(False, f"spatula not lying on the table (centre of mass at z = {p_com[2]:.3f} m)")
        if not (p_com[1] > LEFT_REGION_Y and abs(p_com[0]) < 0.45):
            return Outcome(False, f"spatula outside the left region (centre at x={p_com[0]:.3f}, y={p_com[1]:.3f} m)")
        if speed > 0.05:
            return Outcome(False, f"spatula still moving ({speed:.3f} m/s)")
        return Outcome(True, f"spatula resting at x={p_com[0]:.3f}, y={p_com[1]:.3f} m")
