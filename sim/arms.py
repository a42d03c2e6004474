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

from dataclasses import dataclass

import numpy as np

from vla_robot.robots.specs import RobotSpec, get_robot_spec


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


def widowx250() -> ArmModel:
    """WidowX 250 6DOF: shoulder axis 0.1107 m up, upper arm (0.04975, 0, 0.25), forearm 0.25, wrist 0.065."""
    s = get_robot_spec("widowx250")
    body = f"""
<body name="base_link" childclass="arm">
  <geom class="arm_vis" type="box" size="0.07 0.07 0.018" pos="0 0 0.018" rgba="0.12 0.12 0.12 1"/>
  <body name="shoulder_link" pos="0 0 0.07205">
    <joint name="waist" axis="0 0 1" {_range(s, 0)}/>
    <geom class="arm_vis" type="cylinder" size="0.045 0.036" pos="0 0 -0.018" rgba="0.15 0.15 0.15 1"/>
    <body name="upper_arm_link" pos="0 0 0.03865" gravcomp="1">
      <joint name="shoulder" axis="0 1 0" {_range(s, 1)}/>
      <geom type="capsule" fromto="0 0 0 0.04975 0 0.25" size="0.022"/>
      <body name="upper_forearm_link" pos="0.04975 0 0.25" gravcomp="1">
        <joint name="elbow" axis="0 1 0" {_range(s, 2)}/>
        <geom type="capsule" fromto="0 0 0 0.0595 0 0" size="0.02"/>
        <body name="lower_forearm_link" pos="0.0595 0 0" gravcomp="1">
          <joint name="forearm_roll" axis="1 0 0" {_range(s, 3)}/>
          <geom type="capsule" fromto="0 0 0 0.1905 0 0" size="0.017"/>
          <body name="wrist_link" pos="0.1905 0 0" gravcomp="1">
            <joint name="wrist_angle" axis="0 1 0" {_range(s, 4)}/>
            <geom type="capsule" fromto="0 0 0 0.04 0 0" size="0.016"/>
            <body name="gripper_link" pos="0.065 0 0" gravcomp="1">
              <joint name="wrist_rotate" axis="1 0 0" {_range(s, 5)}/>
              <geom type="box" size="0.022 0.045 0.016" pos="0.018 0 0" rgba="0.15 0.15 0.15 1"/>
              <site name="tcp" pos="0.078 0 0" size="0.005" rgba="1 0 0 0.5" group="4"/>
              <camera name="wrist" pos="0.03 0 0.04" xyaxes="0 -1 0 0.454 0 0.891" fovy="75"/>
              <body name="left_finger_link" pos="0.045 0 0" gravcomp="1">
                <joint name="left_finger" type="slide" axis="0 1 0" {_range(s, 6)} class="finger"/>
                <geom name="left_pad" class="pad" type="box" size="0.022 0.005 0.012" pos="0.033 -0.005 0"/>
              </body>
              <body name="right_finger_link" pos="0.045 0 0" gravcomp="1">
                <joint name="right_finger" type="slide" axis="0 -1 0" {_range(s, 6)} class="finger"/>
                <geom name="right_pad" class="pad" type="box" size="0.022 0.005 0.012" pos="0.033 0.005 0"/>
              </body>
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>"""
    kps = (60.0, 120.0, 80.0, 20.0, 25.0, 12.0)
    forces = (10.0, 20.0, 10.0, 4.1, 4.1, 4.1)
    joints = s.joint_names[:6]
    act = "\n".join(_pos_act(s, i, joints[i], kps[i], forces[i]) for i in range(6))
    act += "\n" + _pos_act(s, 6, "left_finger", 600.0, 12.0)
    eq = '<joint joint1="right_finger" joint2="left_finger" polycoef="0 1 0 0 0" solref="0.005 1"/>'
    return ArmModel(
        spec=s,
        body_xml=body,
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
    )


def so100() -> ArmModel:
    """SO-100: upper arm 0.116 m, forearm 0.135 m, a fixed jaw and a hinged moving jaw."""
    s = get_robot_spec("so100")
    grasp_angle = 0.25  # the moving pad is parallel to the fixed jaw when it holds the 28 mm cube
    pivot = np.array([0.025, 0.03])
    pad_centre = np.array([0.066, 0.020])
    c, sn = np.cos(-grasp_angle), np.sin(-grasp_angle)
    rel = np.array([[c, -sn], [sn, c]]) @ (pad_centre - pivot)
    body = f"""
<body name="base_link" childclass="arm">
  <geom class="arm_vis" type="box" size="0.045 0.045 0.025" pos="0 0 0.025" rgba="0.9 0.9 0.88 1"/>
  <body name="shoulder_link" pos="0 0 0.05">
    <joint name="shoulder_pan" axis="0 0 1" {_range(s, 0)}/>
    <geom class="arm_vis" type="box" size="0.03 0.03 0.025" pos="0.015 0 0.025" rgba="0.95 0.95 0.92 1"/>
    <body name="upper_arm_link" pos="0.03 0 0.05" gravcomp="1">
      <joint name="shoulder_lift" axis="0 1 0" {_range(s, 1)}/>
      <geom type="capsule" fromto="0 0 0 0.116 0 0" size="0.018" rgba="0.95 0.95 0.92 1"/>
      <body name="lower_arm_link" pos="0.116 0 0" gravcomp="1">
        <joint name="elbow_flex" axis="0 1 0" {_range(s, 2)}/>
        <geom type="capsule" fromto="0 0 0 0.135 0 0" size="0.016" rgba="0.95 0.95 0.92 1"/>
        <body name="wrist_link" pos="0.135 0 0" gravcomp="1">
          <joint name="wrist_flex" axis="0 1 0" {_range(s, 3)}/>
          <geom type="capsule" fromto="0 0 0 0.02 0 0" size="0.015" rgba="0.95 0.95 0.92 1"/>
          <body name="gripper_link" pos="0.02 0 0" gravcomp="1">
            <joint name="wrist_roll" axis="1 0 0" {_range(s, 4)}/>
            <geom type="box" size="0.015 0.028 0.016" pos="0.012 0.004 0" rgba="0.95 0.95 0.92 1"/>
            <geom name="fixed_jaw" class="pad" type="box" size="0.03 0.004 0.011" pos="0.06 -0.016 0"/>
            <site name="tcp" pos="0.066 0.004 0" size="0.005" rgba="1 0 0 0.5" group="4"/>
            <camera name="wrist" pos="0.02 0.0 0.035" xyaxes="0 -1 0 0.454 0 0.891" fovy="75"/>
            <body name="moving_jaw_link" pos="{pivot[0]:.4f} {pivot[1]:.4f} 0" gravcomp="1">
              <joint name="gripper" axis="0 0 1" {_range(s, 5)} class="finger" damping="0.02" armature="0.0005"/>
              <geom class="arm_vis" type="capsule" fromto="0 0 0 {rel[0]:.4f} {rel[1] + 0.004:.4f} 0" size="0.005"/>
              <geom name="moving_jaw" class="pad" type="box" size="0.026 0.004 0.011"
                    pos="{rel[0]:.4f} {rel[1]:.4f} 0" euler="0 0 {-grasp_angle}"/>
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>"""
    kps = (25.0, 40.0, 30.0, 15.0, 8.0)
    forces = (3.0, 3.0, 3.0, 3.0, 3.0)
    act = "\n".join(_pos_act(s, i, s.joint_names[i], kps[i], forces[i]) for i in range(5))
    act += "\n" + _pos_act(s, 5, "gripper", 6.0, 0.4)
    return ArmModel(
        spec=s,
        body_xml=body,
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
    )


ARM_BUILDERS = {"widowx250": widowx250, "so100": so100}


def arm_model(robot: str) -> ArmModel:
    if robot not in ARM_BUILDERS:
        raise ValueError(f"unknown robot {robot!r}; choose one of {sorted(ARM_BUILDERS)}")
    return ARM_BUILDERS[robot]()
