"""MJCF for the two arms, generated from ``vla_robot.robots.specs`` so a limit is written once.

Both arms are simple capsules and boxes on the real kinematic chain (names, axes, link
offsets from the issue), with position actuators whose gains and force limits are of the
order of the real servos (Dynamixel XM540/XM430 on the WidowX, Feetech STS3215 on the
SO-100). Links carry ``gravcomp`` because the real servos hold their pose without the
steady-state sag a pure P-controller would show; the gains then only shape the motion.

Frames: x forward over the table, z up, the arm base at the origin on the table top.
The grasp point of each gripper is the site ``tcp``; with the gripper pointing down its
fingers close along the gripper body's y axis.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

import numpy as np

from vla_robot.robots.specs import RobotSpec, get_robot_spec


# The arm's MJCF default classes (joint damping, contact classes), shared by the task scene
# and the arm-only kinematics model so both describe one arm.
ARM_DEFAULTS_XML = """<default class="arm">
      <joint damping="0.5" armature="0.02" frictionloss="0.01"/>
      <geom contype="2" conaffinity="1" condim="3" friction="0.8 0.01 0.001" rgba="0.2 0.2 0.22 1" density="800"/>
      <default class="arm_vis"><geom contype="0" conaffinity="0"/></default>
      <default class="finger"><joint damping="2" armature="0.005" frictionloss="0"/></default>
      <default class="pad"><geom condim="4" friction="1.5 0.02 0.002" solref="0.004 1" solimp="0.95 0.99 0.001" rgba="0.1 0.1 0.1 1"/></default>
    </default>"""


@dataclass(frozen=True)
class ArmModel:
    """An arm's MJCF fragments plus the task geometry scaled to its reach."""

    spec: RobotSpec
    body_xml: str
    actuator_xml: str
    equality_xml: str
    gripper_qpos_count: int  # qpos entries of the gripper mechanism (2 fingers or 1 jaw)
    gripper_geoms: tuple[str, ...]
    cube_size: float  # edge length
    card_size: float
    grid_center: tuple[float, float]  # table point the third-person camera looks at
    grid_shape: tuple[int, int]  # slots along the camera's view direction, across it
    slot_pitch: float
    camera_pos: tuple[float, float, float]
    tcp_grasp_offset: float  # TCP height above the cube centre when grasping
    hover: float  # travel height of the TCP above the table
    actuator_forces: tuple[float, ...] = ()  # force limit of each actuator, spec order (the servos' stall output)

    def gripper_qpos(self, value: float) -> list[float]:
        """qpos of the gripper joints for one gripper command value."""
        return [value] * self.gripper_qpos_count


def _range(spec: RobotSpec, i: int) -> str:
    return f'range="{spec.lower[i]:.6g} {spec.upper[i]:.6g}"'


def _pos_act(spec: RobotSpec, i: int, joint: str, kp: float, force: float) -> str:
    return (
        f'<position name="{spec.joint_names[i]}" joint="{joint}" kp="{kp:g}" dampratio="1" '
        f'ctrlrange="{spec.lower[i]:.6g} {spec.upper[i]:.6g}" forcerange="{-force:g} {force:g}"/>'
    )


def _actuators(spec: RobotSpec, joints: tuple[str, ...], kps: tuple[float, ...], forces: tuple[float, ...]) -> str:
    """One position actuator per spec joint, in spec order; ``joints`` names the MJCF joint each drives."""
    rows = zip(joints, kps, forces, strict=True)
    return "\n".join(_pos_act(spec, i, joint, kp, force) for i, (joint, kp, force) in enumerate(rows))


@dataclass(frozen=True)
class _Link:
    """One body of the serial chain; its hinge is the spec's next arm joint."""

    body: str
    pos: str
    axis: str
    geoms: str
    gravcomp: bool = True


def _arm_body(spec: RobotSpec, base_geom: str, links: tuple[_Link, ...], gripper: str) -> str:
    """The base, then ``links`` nested in order (link i turns about spec joint i), the gripper innermost.

    Written as a table of links because both arms share this chain shape; only the gripper differs.
    """
    xml = gripper
    for i in reversed(range(len(links))):
        link = links[i]
        gravcomp = ' gravcomp="1"' if link.gravcomp else ""
        joint = f'<joint name="{spec.joint_names[i]}" axis="{link.axis}" {_range(spec, i)}/>'
        inner = textwrap.indent(f"{joint}\n{link.geoms}\n{xml}", "  ")
        xml = f'<body name="{link.body}" pos="{link.pos}"{gravcomp}>\n{inner}\n</body>'
    inner = textwrap.indent(f"{base_geom}\n{xml}", "  ")
    return f'\n<body name="base_link" childclass="arm">\n{inner}\n</body>'


def widowx250() -> ArmModel:
    """WidowX 250 6DOF: shoulder axis 0.1107 m up, upper arm (0.04975, 0, 0.25), forearm 0.25, wrist 0.065."""
    s = get_robot_spec("widowx250")
    links = (
        _Link("shoulder_link", "0 0 0.07205", "0 0 1",
              '<geom class="arm_vis" type="cylinder" size="0.045 0.036" pos="0 0 -0.018" rgba="0.15 0.15 0.15 1"/>',
              gravcomp=False),
        _Link("upper_arm_link", "0 0 0.03865", "0 1 0", '<geom type="capsule" fromto="0 0 0 0.04975 0 0.25" size="0.022"/>'),
        _Link("upper_forearm_link", "0.04975 0 0.25", "0 1 0", '<geom type="capsule" fromto="0 0 0 0.0595 0 0" size="0.02"/>'),
        _Link("lower_forearm_link", "0.0595 0 0", "1 0 0", '<geom type="capsule" fromto="0 0 0 0.1905 0 0" size="0.017"/>'),
        _Link("wrist_link", "0.1905 0 0", "0 1 0", '<geom type="capsule" fromto="0 0 0 0.04 0 0" size="0.016"/>'),
        _Link("gripper_link", "0.065 0 0", "1 0 0", """\
<geom type="box" size="0.022 0.045 0.016" pos="0.018 0 0" rgba="0.15 0.15 0.15 1"/>
<site name="tcp" pos="0.078 0 0" size="0.005" rgba="1 0 0 0.5" group="4"/>
<camera name="wrist" pos="0.03 0 0.04" xyaxes="0 -1 0 0.454 0 0.891" fovy="75"/>"""),
    )
    fingers = f"""\
<body name="left_finger_link" pos="0.045 0 0" gravcomp="1">
  <joint name="left_finger" type="slide" axis="0 1 0" {_range(s, 6)} class="finger"/>
  <geom name="left_pad" class="pad" type="box" size="0.022 0.005 0.012" pos="0.033 -0.005 0"/>
</body>
<body name="right_finger_link" pos="0.045 0 0" gravcomp="1">
  <joint name="right_finger" type="slide" axis="0 -1 0" {_range(s, 6)} class="finger"/>
  <geom name="right_pad" class="pad" type="box" size="0.022 0.005 0.012" pos="0.033 0.005 0"/>
</body>"""
    base = '<geom class="arm_vis" type="box" size="0.07 0.07 0.018" pos="0 0 0.018" rgba="0.12 0.12 0.12 1"/>'
    forces = (10.0, 20.0, 10.0, 4.1, 4.1, 4.1, 12.0)
    act = _actuators(
        s,
        joints=(*s.joint_names[:6], "left_finger"),
        kps=(60.0, 120.0, 80.0, 20.0, 25.0, 12.0, 600.0),
        forces=forces,
    )
    eq = '<joint joint1="right_finger" joint2="left_finger" polycoef="0 1 0 0 0" solref="0.005 1"/>'
    return ArmModel(
        spec=s,
        body_xml=_arm_body(s, base, links, fingers),
        actuator_xml=act,
        equality_xml=eq,
        gripper_qpos_count=2,
        gripper_geoms=("left_pad", "right_pad"),
        cube_size=0.035,
        card_size=0.07,
        grid_center=(0.32, 0.0),
        grid_shape=(3, 4),
        slot_pitch=0.095,
        camera_pos=(0.0, -0.16, 0.336),
        tcp_grasp_offset=0.004,
        hover=0.12,
        actuator_forces=forces,
    )


def so100() -> ArmModel:
    """SO-100: upper arm 0.116 m, forearm 0.135 m, a fixed jaw and a hinged moving jaw."""
    s = get_robot_spec("so100")
    grasp_angle = 0.25  # the moving pad is parallel to the fixed jaw when it holds the 28 mm cube
    pivot = np.array([0.025, 0.03])
    pad_centre = np.array([0.066, 0.020])
    c, sn = np.cos(-grasp_angle), np.sin(-grasp_angle)
    rel = np.array([[c, -sn], [sn, c]]) @ (pad_centre - pivot)
    shell = 'rgba="0.95 0.95 0.92 1"'
    links = (
        _Link("shoulder_link", "0 0 0.05", "0 0 1",
              f'<geom class="arm_vis" type="box" size="0.03 0.03 0.025" pos="0.015 0 0.025" {shell}/>',
              gravcomp=False),
        _Link("upper_arm_link", "0.03 0 0.05", "0 1 0", f'<geom type="capsule" fromto="0 0 0 0.116 0 0" size="0.018" {shell}/>'),
        _Link("lower_arm_link", "0.116 0 0", "0 1 0", f'<geom type="capsule" fromto="0 0 0 0.135 0 0" size="0.016" {shell}/>'),
        _Link("wrist_link", "0.135 0 0", "0 1 0", f'<geom type="capsule" fromto="0 0 0 0.02 0 0" size="0.015" {shell}/>'),
        _Link("gripper_link", "0.02 0 0", "1 0 0", f"""\
<geom type="box" size="0.015 0.028 0.016" pos="0.012 0.004 0" {shell}/>
<geom name="fixed_jaw" class="pad" type="box" size="0.03 0.004 0.011" pos="0.06 -0.016 0"/>
<site name="tcp" pos="0.066 0.004 0" size="0.005" rgba="1 0 0 0.5" group="4"/>
<camera name="wrist" pos="0.02 0.0 0.035" xyaxes="0 -1 0 0.454 0 0.891" fovy="75"/>"""),
    )
    moving_jaw = f"""\
<body name="moving_jaw_link" pos="{pivot[0]:.4f} {pivot[1]:.4f} 0" gravcomp="1">
  <joint name="gripper" axis="0 0 1" {_range(s, 5)} class="finger" damping="0.02" armature="0.0005"/>
  <geom class="arm_vis" type="capsule" fromto="0 0 0 {rel[0]:.4f} {rel[1] + 0.004:.4f} 0" size="0.005"/>
  <geom name="moving_jaw" class="pad" type="box" size="0.026 0.004 0.011"
        pos="{rel[0]:.4f} {rel[1]:.4f} 0" euler="0 0 {-grasp_angle}"/>
</body>"""
    base = '<geom class="arm_vis" type="box" size="0.045 0.045 0.025" pos="0 0 0.025" rgba="0.9 0.9 0.88 1"/>'
    forces = (3.0, 3.0, 3.0, 3.0, 3.0, 0.4)
    act = _actuators(
        s,
        joints=(*s.joint_names[:5], "gripper"),
        kps=(25.0, 40.0, 30.0, 15.0, 8.0, 6.0),
        forces=forces,
    )
    return ArmModel(
        spec=s,
        body_xml=_arm_body(s, base, links, moving_jaw),
        actuator_xml=act,
        equality_xml="",
        gripper_qpos_count=1,
        gripper_geoms=("fixed_jaw", "moving_jaw"),
        cube_size=0.028,
        card_size=0.044,
        grid_center=(0.19, 0.01),
        grid_shape=(3, 4),
        slot_pitch=0.048,
        camera_pos=(0.0, -0.088, 0.1848),  # the Bridge pose scaled by 0.55
        tcp_grasp_offset=0.007,
        hover=0.08,
        actuator_forces=forces,
    )


ARM_BUILDERS = {"widowx250": widowx250, "so100": so100}


def arm_model(robot: str) -> ArmModel:
    if robot not in ARM_BUILDERS:
        raise ValueError(f"unknown robot {robot!r}; choose one of {sorted(ARM_BUILDERS)}")
    return ARM_BUILDERS[robot]()
