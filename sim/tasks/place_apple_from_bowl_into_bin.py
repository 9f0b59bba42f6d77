"""PlaceAppleFromBowlIntoBin (bimanual): the right arm takes an apple out of a bowl and puts it on a small
shelf between the arms; the left arm then picks it up from the shelf and drops it into a bin.

World frame W: table centre, +z up, table top at z = 0 (metres). The arms stand on the table's -x side
at y = -0.3 ("right") and y = +0.3 ("left"), facing +x.

Objects:
- bowl: drake_models' `dishes/evo_bowl_compliant.urdf` (compliant hydroelastic mesh, 14.7 cm across,
  6.1 cm tall, body origin 3.06 cm above its bottom), free, in front of the right arm.
- apple: built from primitives, a compliant oblate ellipsoid (radii 3.2, 3.2, 2.9 cm; flattened so it
  does not roll off the shelf), 0.15 kg, red, with a visual-only stem; starts resting in the bowl.
- shelf: a welded stand between the arms (top board 20 × 18 cm, top surface at z = 0.14 m).
- bin: an open box built from primitives (inner 20 × 24 cm, 10 cm tall walls), 1.5 kg, free, in front of
  the left arm. drake_models' `bin2.sdf` (42 × 56 × 21 cm) does not fit on the table beside the shelf.

Randomised from the seed: the bowl's and bin's positions (±3 cm) and yaws, the apple's position in the
bowl (up to 1.2 cm off centre) and its yaw.

Expert (one plan on a common clock, computed after settling): right arm grasps the apple from above,
lifts, lowers it onto the shelf, opens and retreats to its side; then the left arm grasps the apple at its
*planned* shelf position (the opening leaves ~8 mm of slack per side; the measured placement error is
~1 mm because the holding width keeps the finger forces below saturation, so the grasp stays centred),
lifts it, moves above the bin, opens to drop it, and retreats.

Success: the apple's centre lies inside the bin's inner volume (in the bin frame) and the apple has come
to rest (speed < 5 cm/s).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from pydrake.geometry import (
    AddCompliantHydroelasticProperties,
    AddContactMaterial,
    Box,
    Cylinder,
    Ellipsoid,
    ProximityProperties,
)
from pydrake.math import RigidTransform, RollPitchYaw
from pydrake.multibody.plant import CoulombFriction
from pydrake.multibody.tree import SpatialInertia, UnitInertia

from geo4d_core.geometry import make_pose
from sim.control import ArmKinematics
from sim.scene import HOME_Q, SceneConfig, Station, proximity
from sim.tasks.base import DemoPlan, Outcome, Task, Waypoint

BOWL_URL = "package://drake_models/dishes/evo_bowl_compliant.urdf"
BOWL_ORIGIN_HEIGHT = 0.0306  # bowl body origin above the bowl's bottom, metres
BOWL_INNER_BOTTOM = -0.0240  # inner bottom surface in the bowl frame (z), metres
BOWL_XY = (0.02, -0.26)  # nominal bowl centre on the table (world x, y), metres
APPLE_RADII = (0.032, 0.032, 0.029)  # apple ellipsoid semi-axes (x, y, z), metres
APPLE_MASS = 0.15  # kg
SHELF_XY = (0.08, 0.0)  # centre of the shelf top (world x, y), metres
SHELF_TOP_Z = 0.14  # height of the shelf's top surface, metres
SHELF_TOP = (0.20, 0.18, 0.02)  # top board size (x, y, z), metres
BIN_XY = (0.03, 0.28)  # nominal bin centre (world x, y), metres
BIN_INNER = (0.20, 0.24)  # inner size of the bin (along its x, y), metres
BIN_WALL = 0.01  # wall and floor thickness, metres
BIN_HEIGHT = 0.10  # outer height of the walls, metres
OPEN = 0.08  # finger opening for grasping, metres
# Commanded opening while holding the 6.4 cm apple: the finger PD force (≈ 16 N per finger) stays below its
# 20 N limit, so the fingers keep centring the apple. Commanding 0 saturates both fingers, and the apple
# with both fingers then drifts freely along the finger axis (measured: 1.4 cm off on the shelf).
HOLD = 0.045
GRASP_ABOVE_CENTRE = 0.004  # E above the apple's centre when grasping (pads around the equator), metres
RIGHT_BASE = (-0.45, -0.30)  # right arm base (world x, y), metres
LEFT_BASE = (-0.45, 0.30)  # left arm base (world x, y), metres


# E pointing down (z_E = -z_W) with its x along world +x, so the fingers open along world y.
R_DOWN = np.column_stack([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])


def _apple_proximity(config: SceneConfig) -> ProximityProperties:
    """Compliant hydroelastic contact for the apple, with a finer mesh than the station default."""
    props = ProximityProperties()
    AddContactMaterial(friction=CoulombFriction(config.friction, config.friction), properties=props)
    AddCompliantHydroelasticProperties(0.005, config.hydroelastic_modulus, props)
    return props


class PlaceAppleFromBowlIntoBin(Task):
    """Bimanual: bowl → shelf with the right arm, shelf → bin with the left arm."""

    name: ClassVar[str] = "PlaceAppleFromBowlIntoBin"
    default_episodes: ClassVar[int] = 20

    def arm_bases(self) -> dict[str, np.ndarray]:
        """Both bases on the table's -x side, facing +x: right at y = -0.3 m, left at y = +0.3 m."""
        bases = {}
        for name, (x, y) in (("right", RIGHT_BASE), ("left", LEFT_BASE)):
            X = np.eye(4)
            X[:3, 3] = [x, y, 0.0]
            bases[name] = X
        return bases

    def add_objects(self, plant, parser, config: SceneConfig) -> dict[str, object]:
        """Bowl (model), apple, shelf and bin (primitives); returns their bodies."""
        bowl_instance = parser.AddModelsFromUrl(BOWL_URL)[0]
        bowl = plant.GetBodyByName("bowl", bowl_instance)

        apple_instance = plant.AddModelInstance("apple")
        apple = plant.AddRigidBody("apple", apple_instance,
                                   SpatialInertia.SolidEllipsoidWithMass(APPLE_MASS, *APPLE_RADII))
        plant.RegisterVisualGeometry(apple, RigidTransform(), Ellipsoid(*APPLE_RADII), "apple_visual",
                                     np.array([0.78, 0.08, 0.06, 1.0]))
        plant.RegisterCollisionGeometry(apple, RigidTransform(), Ellipsoid(*APPLE_RADII), "apple_collision",
                                        _apple_proximity(config))
        stem = RigidTransform(RollPitchYaw(0.25, 0.0, 0.0), [0.0, 0.0, APPLE_RADII[2] + 0.006])
        plant.RegisterVisualGeometry(apple, stem, Cylinder(0.0025, 0.016), "apple_stem_visual",
                                     np.array([0.35, 0.22, 0.1, 1.0]))

        shelf_instance = plant.AddModelInstance("shelf")
        shelf = plant.AddRigidBody("shelf", shelf_instance, SpatialInertia.SolidBoxWithMass(2.0, *SHELF_TOP))
        wood = np.array([0.62, 0.5, 0.36, 1.0])
        side = (SHELF_TOP[0], 0.02, SHELF_TOP_Z - SHELF_TOP[2])
        parts = [("top", [0.0, 0.0, SHELF_TOP_Z - SHELF_TOP[2] / 2], SHELF_TOP)]
        for label, sign in (("side_left", 1.0), ("side_right", -1.0)):
            parts.append((label, [0.0, sign * (SHELF_TOP[1] - side[1]) / 2, side[2] / 2], side))
        for label, p, size in parts:
            plant.RegisterVisualGeometry(shelf, RigidTransform(p), Box(*size), f"shelf_{label}_visual", wood)
            plant.RegisterCollisionGeometry(shelf, RigidTransform(p), Box(*size), f"shelf_{label}_collision",
                                            proximity(config, compliant=False))
        plant.WeldFrames(plant.world_frame(), shelf.body_frame(), RigidTransform([*SHELF_XY, 0.0]))

        bin_instance = plant.AddModelInstance("bin")
        outer = (BIN_INNER[0] + 2 * BIN_WALL, BIN_INNER[1] + 2 * BIN_WALL, BIN_HEIGHT)
        bin_body = plant.AddRigidBody("bin", bin_instance, SpatialInertia.MakeFromCentralInertia(
            1.5, np.array([0.0, 0.0, 0.035]), UnitInertia.SolidBox(*outer) * 1.5))
        grey = np.array([0.3, 0.33, 0.38, 1.0])
        walls = [("floor", [0.0, 0.0, BIN_WALL / 2], (outer[0], outer[1], BIN_WALL))]
        for label, sign in (("front", 1.0), ("back", -1.0)):
            walls.append((label, [sign * (outer[0] - BIN_WALL) / 2, 0.0, BIN_HEIGHT / 2],
                          (BIN_WALL, outer[1], BIN_HEIGHT)))
        for label, sign in (("left", 1.0), ("right", -1.0)):
            walls.append((label, [0.0, sign * (outer[1] - BIN_WALL) / 2, BIN_HEIGHT / 2],
                          (BIN_INNER[0], BIN_WALL, BIN_HEIGHT)))
        for label, p, size in walls:
            plant.RegisterVisualGeometry(bin_body, RigidTransform(p), Box(*size), f"bin_{label}_visual", grey)
            plant.RegisterCollisionGeometry(bin_body, RigidTransform(p), Box(*size), f"bin_{label}_collision",
                                            proximity(config))
        return {"bowl": bowl, "apple": apple, "shelf": shelf, "bin": bin_body}

    def randomize(self, station: Station, plant_context, rng: np.random.Generator) -> None:
        """Bowl and bin ±3 cm and any yaw (bin ±0.2 rad); apple up to 1.2 cm off the bowl centre,
        resting on the bowl's inner bottom (its flattened axis up), any yaw."""
        plant = station.plant
        p_bowl = np.array([BOWL_XY[0] + rng.uniform(-0.03, 0.03), BOWL_XY[1] + rng.uniform(-0.03, 0.03),
                           BOWL_ORIGIN_HEIGHT + 0.0005])
        plant.SetFreeBodyPose(plant_context, station.objects["bowl"],
                              RigidTransform(RollPitchYaw(0, 0, rng.uniform(-np.pi, np.pi)), p_bowl))
        r, a = 0.012 * np.sqrt(rng.uniform()), rng.uniform(-np.pi, np.pi)
        p_apple = p_bowl + [r * np.cos(a), r * np.sin(a), BOWL_INNER_BOTTOM + APPLE_RADII[2] + 0.002]
        plant.SetFreeBodyPose(plant_context, station.objects["apple"],
                              RigidTransform(RollPitchYaw(0, 0, rng.uniform(-np.pi, np.pi)), p_apple))
        p_bin = np.array([BIN_XY[0] + rng.uniform(-0.03, 0.03), BIN_XY[1] + rng.uniform(-0.03, 0.03), 0.0005])
        plant.SetFreeBodyPose(plant_context, station.objects["bin"],
                              RigidTransform(RollPitchYaw(0, 0, rng.uniform(-0.2, 0.2)), p_bin))

    def plan(self, station: Station, plant_context) -> DemoPlan:
        """Right arm: bowl → shelf (t = 0 … 8.5 s); left arm: shelf → bin (t = 7.5 … 14.5 s)."""
        plant = station.plant
        p_apple = plant.EvalBodyPoseInWorld(plant_context, station.objects["apple"]).translation()
        X_WBin = plant.EvalBodyPoseInWorld(plant_context, station.objects["bin"]).GetAsMatrix4()

        # Right arm: grasp around the apple's equator, lift, set it onto the shelf, release, retreat.
        grasp = p_apple + [0.0, 0.0, GRASP_ABOVE_CENTRE]
        lift = grasp + [0.0, 0.0, 0.15]
        p_shelf_apple = np.array([*SHELF_XY, SHELF_TOP_Z + APPLE_RADII[2]])  # planned apple centre on the shelf
        place = p_shelf_apple + [0.0, 0.0, GRASP_ABOVE_CENTRE + 0.004]  # released 4 mm above the board
        above_place = place + [0.0, 0.0, 0.12]
        right_rest = np.array([-0.05, -0.32, 0.40])
        right = [
            Waypoint(1.5, make_pose(R_DOWN, grasp + [0.0, 0.0, 0.10]), OPEN),
            Waypoint(2.5, make_pose(R_DOWN, grasp), OPEN),
            Waypoint(3.0, make_pose(R_DOWN, grasp), HOLD),
            Waypoint(4.0, make_pose(R_DOWN, lift), HOLD),
            Waypoint(5.3, make_pose(R_DOWN, [*place[:2], lift[2]]), HOLD),
            Waypoint(6.1, make_pose(R_DOWN, place), HOLD),
            Waypoint(6.6, make_pose(R_DOWN, place), OPEN),
            Waypoint(7.3, make_pose(R_DOWN, above_place), OPEN),
            Waypoint(8.5, make_pose(R_DOWN, right_rest), OPEN),
        ]

        # Left arm: wait at home, then pick the apple at its planned shelf position and drop it in the bin.
        X_home = ArmKinematics(station.arm("left").X_WB).fk(HOME_Q)
        pick = p_shelf_apple + [0.0, 0.0, GRASP_ABOVE_CENTRE]
        pick_lift = pick + [0.0, 0.0, 0.15]
        p_bin = X_WBin[:3, 3]
        drop = np.array([p_bin[0], p_bin[1], BIN_HEIGHT + APPLE_RADII[2] + 0.07])
        left = [
            Waypoint(7.5, make_pose(R_DOWN, X_home[:3, 3]), OPEN),
            Waypoint(9.0, make_pose(R_DOWN, pick + [0.0, 0.0, 0.12]), OPEN),
            Waypoint(9.8, make_pose(R_DOWN, pick), OPEN),
            Waypoint(10.3, make_pose(R_DOWN, pick), HOLD),
            Waypoint(11.2, make_pose(R_DOWN, pick_lift), HOLD),
            Waypoint(12.5, make_pose(R_DOWN, drop), HOLD),
            Waypoint(13.0, make_pose(R_DOWN, drop), OPEN),
            Waypoint(14.0, make_pose(R_DOWN, drop + [0.0, 0.0, 0.10]), OPEN),
        ]
        return DemoPlan({"right": right, "left": left}, duration=15.0,
                        notes={"apple_x": float(p_apple[0]), "apple_y": float(p_apple[1])})

    def success(self, station: Station, plant_context) -> Outcome:
        """The apple's centre inside the bin's inner volume and at rest (< 5 cm/s)."""
        plant = station.plant
        apple = station.objects["apple"]
        p_W = plant.EvalBodyPoseInWorld(plant_context, apple).translation()
        X_WBin = plant.EvalBodyPoseInWorld(plant_context, station.objects["bin"]).GetAsMatrix4()
        p_Bin = np.linalg.inv(X_WBin) @ np.append(p_W, 1.0)
        speed = np.linalg.norm(plant.EvalBodySpatialVelocityInWorld(plant_context, apple).translational())
        where = f"x={p_W[0]:.3f}, y={p_W[1]:.3f}, z={p_W[2]:.3f} m"
        inside = (abs(p_Bin[0]) < BIN_INNER[0] / 2 and abs(p_Bin[1]) < BIN_INNER[1] / 2
                  and BIN_WALL < p_Bin[2] < BIN_HEIGHT)
        if not inside:
            on_shelf = (abs(p_W[0] - SHELF_XY[0]) < SHELF_TOP[0] / 2 and abs(p_W[1] - SHELF_XY[1]) < SHELF_TOP[1] / 2
                        and SHELF_TOP_Z < p_W[2] < SHELF_TOP_Z + 0.05)
            if on_shelf:
                return Outcome(False, f"apple still on shelf (at {where})")
            X_WBowl = plant.EvalBodyPoseInWorld(plant_context, station.objects["bowl"]).GetAsMatrix4()
            if np.linalg.norm(p_W[:2] - X_WBowl[:2, 3]) < 0.07 and p_W[2] < 0.08:
                return Outcome(False, f"apple still in bowl (at {where})")
            return Outcome(False, f"apple not in bin: at {where}")
        if speed > 0.05:
            return Outcome(False, f"apple in bin but still moving ({speed:.3f} m/s)")
        return Outcome(True, f"apple resting in bin at {where}")
