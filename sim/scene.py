"""Assemble the task scene (table, cube, cards, lights, cameras, arm) as MJCF plus in-memory assets.

Card textures are PNGs rendered from the emoji font at build time and handed to MuJoCo as
an asset dict, so nothing but code is shipped. Every emoji of the pool gets a material;
a reset only re-points each card geom at another material, so no recompilation per episode.
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from sim import emoji as emoji_catalogue
from sim.arms import ARM_DEFAULTS_XML, ArmModel, arm_model
from sim.config import TwinConfig

REACH_COLOURS = {
    "red": (0.85, 0.15, 0.12),
    "green": (0.15, 0.65, 0.2),
    "blue": (0.15, 0.3, 0.85),
    "yellow": (0.95, 0.85, 0.1),
    "purple": (0.55, 0.2, 0.7),
    "orange": (0.95, 0.5, 0.1),
    "black": (0.08, 0.08, 0.08),
    "white": (0.97, 0.97, 0.97),
}
# SimplerEnv's Bridge "3rd_view_camera" orientation (w, x, y, z; x forward, y left, z up), in the base frame.
BRIDGE_CAMERA_QUAT = np.array([0.909182, -0.0819809, 0.347277, 0.214629])
BRIDGE_FOVY_DEG = float(np.degrees(2 * np.arctan(240.0 / 623.588)))


@dataclass(frozen=True)
class Scene:
    xml: str
    assets: dict[str, bytes]
    arm: ArmModel
    card_materials: tuple[str, ...]  # one per pool entry (emoji id or colour name)


def _bridge_camera_axes() -> str:
    q = BRIDGE_CAMERA_QUAT / np.linalg.norm(BRIDGE_CAMERA_QUAT)
    rot = np.zeros(9)
    mujoco.mju_quat2Mat(rot, q)
    rot = rot.reshape(3, 3)
    x_axis, y_axis = -rot[:, 1], rot[:, 2]  # MuJoCo cameras look along -z with y up
    return " ".join(f"{v:.6f}" for v in (*x_axis, *y_axis))


def build_scene(config: TwinConfig) -> Scene:
    arm = arm_model(config.robot)
    assets: dict[str, bytes] = {}
    materials: list[str] = []
    asset_xml: list[str] = []
    if config.task == "reach":
        for name, rgb in REACH_COLOURS.items():
            materials.append(name)
            asset_xml.append(f'<material name="card_{name}" rgba="{rgb[0]} {rgb[1]} {rgb[2]} 1" specular="0.1"/>')
    else:
        for eid in config.emoji_pool:
            materials.append(eid)
            assets[f"{eid}.png"] = emoji_catalogue.card_png(eid)
            asset_xml.append(f'<texture name="tex_{eid}" type="2d" file="{eid}.png"/>')
            asset_xml.append(f'<material name="card_{eid}" texture="tex_{eid}" specular="0.1"/>')
    max_w = max([config.size_of(c)[0] for c in config.cameras] + [640])
    max_h = max([config.size_of(c)[1] for c in config.cameras] + [480])
    h = arm.card_size / 2
    cards = "\n".join(
        f'<geom name="card{i}" class="card" size="{h} {h} 0.0005" pos="0.3 {0.1 * i} 0.0005" material="card_{materials[i % len(materials)]}"/>'
        for i in range(config.n_cards)
    )
    c = arm.cube_size / 2
    high = config.render_quality == "high"
    cam = arm.camera_pos
    home = arm.spec.home
    home_qpos = " ".join(f"{v:g}" for v in (*home[:-1], *arm.gripper_qpos(home[-1]), 0.3, 0, c, 1, 0, 0, 0))
    home_ctrl = " ".join(f"{v:g}" for v in home)
    xml = f"""
<mujoco model="{config.task}_{config.robot}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{config.timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <global offwidth="{max_w}" offheight="{max_h}"/>
    <quality shadowsize="2048" offsamples="{4 if high else 0}"/>
    <headlight ambient="0.3 0.3 0.3" diffuse="0.4 0.4 0.4" specular="0 0 0"/>
    <map znear="0.01"/>
  </visual>
  <asset>
    <texture name="sky" type="skybox" builtin="gradient" rgb1="0.75 0.78 0.8" rgb2="0.45 0.47 0.5" width="64" height="64"/>
    <texture name="wood" type="2d" builtin="flat" rgb1="0.62 0.5 0.38" rgb2="0.55 0.44 0.33" mark="random" random="0.04" width="256" height="256"/>
    <material name="table" texture="wood" texrepeat="4 4" specular="0.05"/>
    <material name="cube" rgba="0.9 0.2 0.15 1" specular="0.2"/>
    <material name="floor" rgba="0.3 0.3 0.32 1"/>
    {chr(10).join(asset_xml)}
  </asset>
  <default>
    {ARM_DEFAULTS_XML}
    <default class="card"><geom type="box" contype="0" conaffinity="0" group="1"/></default>
  </default>
  <worldbody>
    <light name="key" directional="true" pos="0.3 0.3 1.5" dir="-0.2 -0.2 -1" diffuse="0.6 0.6 0.6" castshadow="{'true' if high else 'false'}"/>
    <light name="fill" directional="true" pos="-0.5 -0.5 1.0" dir="0.4 0.3 -1" diffuse="0.25 0.25 0.25" castshadow="false"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 -0.75" material="floor" contype="1" conaffinity="1"/>
    <geom name="table" type="box" size="0.45 0.6 0.375" pos="0.25 0 -0.375" material="table" contype="1" conaffinity="1" friction="0.6 0.01 0.001"/>
    {cards}
    <camera name="third_person" pos="{cam[0]} {cam[1]} {cam[2]}" xyaxes="{_bridge_camera_axes()}"
            resolution="640 480" sensorsize="0.0064 0.0048" focalpixel="623.588 623.588"/>
    {arm.body_xml}
    <body name="cube" pos="0.3 0 {c}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{c} {c} {c}" material="cube" mass="0.04" condim="4" friction="1.2 0.02 0.002" contype="1" conaffinity="3"/>
    </body>
  </worldbody>
  <actuator>
    {arm.actuator_xml}
  </actuator>
  <equality>
    {arm.equality_xml}
  </equality>
  <keyframe>
    <key name="home" qpos="{home_qpos}" ctrl="{home_ctrl}"/>
  </keyframe>
</mujoco>
"""
    return Scene(xml=xml, assets=assets, arm=arm, card_materials=tuple(materials))


def compile_scene(scene: Scene) -> mujoco.MjModel:
    return mujoco.MjModel.from_xml_string(scene.xml, assets=scene.assets)
