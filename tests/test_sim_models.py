"""The arm models compile, carry the issue's limits and geometry, and their kinematics are sane."""

import mujoco
import numpy as np
import pytest

from sim import Twin, TwinConfig
from sim.ik import DampedLeastSquaresIK, top_down_quat
from sim.layout import slots

# The numbers as written in the issue (not read back from specs.py, so a drifted spec fails here).
ISSUE_LIMITS = {
    "widowx250": {
        "waist": (-3.14, 3.14), "shoulder": (-1.885, 1.990), "elbow": (-2.147, 1.606),
        "forearm_roll": (-3.14, 3.14), "wrist_angle": (-1.745, 2.147), "wrist_rotate": (-3.14, 3.14),
        "left_finger": (0.015, 0.037), "right_finger": (0.015, 0.037),
    },
    "so100": {
        "shoulder_pan": (-1.92, 1.92), "shoulder_lift": (-3.32, 0.17), "elbow_flex": (-0.17, 3.14),
        "wrist_flex": (-1.66, 1.66), "wrist_roll": (-2.79, 2.79), "gripper": (-0.17, 1.75),
    },
}


@pytest.fixture(scope="module", params=["widowx250", "so100"])
def twin(request):
    tw = Twin(TwinConfig(robot=request.param, cameras=("third_person",), image_size=(64, 48)))
    yield tw
    tw.close()


def test_joint_and_actuator_limits_equal_issue(twin):
    m = twin.model
    for joint, (lo, hi) in ISSUE_LIMITS[twin.spec.name].items():
        assert m.jnt_limited[m.joint(joint).id]
        np.testing.assert_allclose(m.jnt_range[m.joint(joint).id], (lo, hi), atol=1e-9, err_msg=joint)
    actuators = [m.actuator(i).name for i in range(m.nu)]
    assert actuators == list(twin.spec.joint_names)
    for i, name in enumerate(twin.spec.joint_names):
        joint = "left_finger" if name == "gripper" and twin.spec.name == "widowx250" else name
        np.testing.assert_allclose(m.actuator_ctrlrange[i], ISSUE_LIMITS[twin.spec.name][joint], atol=1e-9)


def test_position_actuators_with_gains_and_force_limits(twin):
    m = twin.model
    for i in range(m.nu):
        assert m.actuator_gaintype[i] == mujoco.mjtGain.mjGAIN_FIXED
        assert m.actuator_gainprm[i, 0] > 0, "position actuator needs kp > 0"
        assert m.actuator_biasprm[i, 1] == -m.actuator_gainprm[i, 0], "bias must be -kp*q (position servo)"
        assert m.actuator_forcelimited[i] and 0 < m.actuator_forcerange[i, 1] <= 25


def test_home_keyframe_is_spec_home(twin):
    m, d = twin.model, mujoco.MjData(twin.model)
    mujoco.mj_resetDataKeyframe(m, d, m.key("home").id)
    np.testing.assert_allclose(d.qpos[twin._qpos_adr], twin.spec.home)
    np.testing.assert_allclose(m.key("home").ctrl, twin.spec.home)


def _anchor(twin, joint):
    return twin.data.xanchor[twin.model.joint(joint).id].copy()


def test_widowx_geometry_matches_issue():
    tw = Twin(TwinConfig(robot="widowx250", cameras=("third_person",), image_size=(64, 48)))
    tw.set_joint_positions(np.array([0, 0, 0, 0, 0, 0, 0.037]))
    assert _anchor(tw, "shoulder")[2] == pytest.approx(0.1107, abs=1e-6)
    np.testing.assert_allclose(_anchor(tw, "elbow") - _anchor(tw, "shoulder"), [0.04975, 0, 0.25], atol=1e-6)
    assert np.linalg.norm(_anchor(tw, "wrist_angle") - _anchor(tw, "elbow")) == pytest.approx(0.25, abs=1e-6)
    assert np.linalg.norm(_anchor(tw, "wrist_rotate") - _anchor(tw, "wrist_angle")) == pytest.approx(0.065, abs=1e-6)
    tw.close()


def test_so100_geometry_matches_issue():
    tw = Twin(TwinConfig(robot="so100", cameras=("third_person",), image_size=(64, 48)))
    tw.set_joint_positions(np.array(tw.spec.home))
    assert np.linalg.norm(_anchor(tw, "elbow_flex") - _anchor(tw, "shoulder_lift")) == pytest.approx(0.116, abs=1e-6)
    assert np.linalg.norm(_anchor(tw, "wrist_flex") - _anchor(tw, "elbow_flex")) == pytest.approx(0.135, abs=1e-6)
    tw.close()


def test_forward_kinematics_home_pose_is_above_table_in_front(twin):
    twin.reset(0)
    pos, _ = twin.ee_pose()
    assert 0.1 < pos[0] < 0.4 and abs(pos[1]) < 0.02 and 0.1 < pos[2] < 0.35, pos
    # folding the elbow further down lowers the tool: FK responds in the right direction
    q = np.array(twin.spec.home)
    q[2] += 0.3
    twin.set_joint_positions(q)
    assert twin.ee_pose()[0][2] < pos[2]


def test_every_card_slot_is_reachable_top_down(twin):
    ik = DampedLeastSquaresIK(twin.model, "tcp", twin.spec.joint_names[:-1], max_iters=300)
    q0 = np.array(twin.spec.home[:-1])
    for xy in slots(twin.spec.name):
        xy = xy + 0.012 * np.sqrt(2) * xy / np.linalg.norm(xy)  # worst case of the per-episode grid shift
        yaw = np.arctan2(xy[1], xy[0]) + np.pi / 2
        target = np.array([*xy, twin.arm.cube_size / 2 + twin.arm.tcp_grasp_offset])
        q, err = ik.solve(target, top_down_quat(yaw), q0)
        assert err < 2e-3, f"slot {xy} unreachable (IK error {err:.4f} m)"
        pos, quat = ik.forward(q)
        assert abs(pos[2] - target[2]) < 2e-3
