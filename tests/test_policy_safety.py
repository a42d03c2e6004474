"""Every safety rule, fed hostile actions: NaN/Inf, huge, far out of limits, stale observations."""

import numpy as np
import pytest

from vla_robot.policy.config import SafetyConfig
from vla_robot.policy.safety import SafetyLayer
from vla_robot.robots.specs import SO100, WIDOWX_250

HOME = np.asarray(WIDOWX_250.home)


def layer(**kw):
    alerts = []
    s = SafetyLayer(WIDOWX_250, SafetyConfig(**kw), period_s=0.1, on_alert=lambda n, m: alerts.append(n))
    return s, alerts


def test_small_in_limit_action_passes_unchanged():
    s, alerts = layer()
    target = HOME + 0.05
    target[-1] = 0.03
    d = s.filter(target, HOME)
    np.testing.assert_allclose(d.targets, target)
    assert not d.holding and d.events == [] and alerts == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_action_holds_and_alerts(bad):
    s, alerts = layer()
    action = HOME.copy()
    action[2] = bad
    measured = HOME + 0.01
    measured[-1] = 0.02
    d = s.filter(action, measured)
    assert d.holding and "non_finite_action" in d.events
    np.testing.assert_allclose(d.targets, measured)  # hold = where the arm really is
    assert np.all(np.isfinite(d.targets))
    assert alerts == ["non_finite_action"] and s.report()["non_finite_action"] == 1


def test_hold_position_is_latched_not_drifting():
    s, _ = layer()
    first = s.filter(np.full(7, np.nan), HOME)
    later = s.filter(np.full(7, np.nan), HOME + 0.2)  # the arm sags while holding
    np.testing.assert_allclose(later.targets, first.targets)
    assert s.report()["hold"] == 2


def test_huge_action_is_clamped_to_position_and_velocity_limits():
    s, _ = layer()
    d = s.filter(np.full(7, 1e9), HOME)
    assert not d.holding
    assert set(d.events) == {"position_clamp", "velocity_clamp"}
    upper, vmax = WIDOWX_250.upper_array, WIDOWX_250.max_velocity_array
    assert np.all(d.targets <= upper + 1e-12)
    assert np.all(np.abs(d.targets - HOME) <= vmax * 0.1 + 1e-9)  # one control period of motion


def test_far_out_of_limits_converges_to_the_limit_and_never_beyond():
    s, _ = layer(joint_workspace=False)  # joint limits alone (the workspace guard is tested below)
    target = WIDOWX_250.lower_array - 5.0
    current = HOME
    for _ in range(100):
        current = s.filter(target, current).targets
    np.testing.assert_allclose(current, WIDOWX_250.lower_array)
    assert s.report()["position_clamp"] == 100


def test_velocity_scale_tightens_the_step():
    s, _ = layer(velocity_scale=0.25)
    d = s.filter(HOME + 1.0, HOME)
    step = np.abs(d.targets - HOME)[:6]
    np.testing.assert_allclose(step, 0.25 * 3.14 * 0.1)


def test_wrong_shape_action_holds():
    s, alerts = layer()
    d = s.filter(np.zeros(6), HOME)
    assert d.holding and d.events == ["bad_shape_action"] and alerts == ["bad_shape_action"]


def test_stale_observation_holds_and_recovers():
    s, alerts = layer(max_obs_age_s=0.2)
    d = s.filter(HOME + 0.01, HOME, obs_age_s=0.5)
    assert d.holding and d.events == ["stale_observation"]
    d = s.filter(HOME + 0.01, HOME, obs_age_s=float("nan"))
    assert d.holding and d.events == ["stale_observation"]
    d = s.filter(HOME + 0.01, HOME, obs_age_s=0.05)
    assert not d.holding
    assert s.report()["stale_observation"] == 2 and alerts.count("stale_observation") == 2


def test_inference_stall_and_empty_queue_hold():
    s, _ = layer(max_inference_stall_s=0.3)
    assert s.filter(None, HOME, stall_s=0.1).events == ["no_action"]
    d = s.filter(HOME, HOME, stall_s=0.5)
    assert d.holding and d.events == ["inference_stall"]
    rep = s.report()
    assert rep["no_action"] == 1 and rep["inference_stall"] == 1


def test_estop_latches_until_reset():
    s, alerts = layer()
    s.estop("test")
    for _ in range(3):
        d = s.filter(HOME + 0.1, HOME)
        assert d.holding and d.events == ["estop"]
        np.testing.assert_allclose(d.targets, HOME)
    assert s.report()["estop"] == 1 and alerts == ["estop"]
    s.reset_estop()
    assert not s.filter(HOME + 0.01, HOME).holding


def test_workspace_box_clamps_ee_targets():
    s, _ = layer(workspace_low=(0.1, -0.2, 0.02), workspace_high=(0.4, 0.2, 0.3))
    ee = np.array([0.3, 0.0, 0.1])
    seen = []

    def ik(action):
        seen.append(action.copy())
        return HOME

    d = s.filter_ee(np.array([5.0, -5.0, -1.0, 0, 0, 0, 0.03]), ee, HOME, ik)
    assert "workspace_clamp" in d.events and not d.holding
    np.testing.assert_allclose(ee + seen[0][:3], [0.4, -0.2, 0.02])  # IK only ever sees the in-box target
    d = s.filter_ee(np.array([np.nan, 0, 0, 0, 0, 0, 0.03]), ee, HOME, ik)
    assert d.holding and d.events == ["non_finite_action"] and len(seen) == 1


def test_every_action_path_output_is_within_limits_under_random_hostile_input():
    """Fuzz, joint and end-effector paths: whatever the policy (or the IK) emits, every command is
    finite, inside position limits, at most one period of scaled velocity from the previous command,
    and its TCP stays in the workspace box and above the table."""
    from vla_robot.policy.workspace import JointWorkspaceGuard

    rng = np.random.default_rng(0)
    low, high = (0.05, -0.35, -0.02), (0.45, 0.35, 0.4)
    for spec in (WIDOWX_250, SO100):
        config = SafetyConfig(velocity_scale=0.5, workspace_low=low, workspace_high=high)
        s = SafetyLayer(spec, config, period_s=1 / 30)
        fk = JointWorkspaceGuard(spec.name, low, high, config.table_z, config.table_clearance)
        vmax = spec.max_velocity_array * 0.5 / 30
        measured = np.asarray(spec.home)
        previous = measured
        assert fk.violation(measured) == 0
        counts = {"hold": 0, "velocity_clamp": 0, "workspace_clamp": 0}

        def ik(action):  # a hostile IK: wild, non-finite or failing
            kind = rng.integers(4)
            if kind == 0:
                raise RuntimeError("no solution")
            out = previous + rng.normal(scale=10.0 ** rng.integers(-2, 3), size=spec.dof)
            if kind == 1:
                out[rng.integers(spec.dof)] = np.nan
            return out

        for i in range(400):
            kind = rng.integers(5)
            if kind == 4:  # the end-effector path
                action = rng.normal(scale=10.0 ** rng.integers(-3, 2), size=7)
                if rng.random() < 0.2:
                    action[rng.integers(7)] = np.nan
                d = s.filter_ee(action, fk.kinematics.tcp(previous), measured, ik,
                                obs_age_s=float(rng.exponential(0.2)))
            else:
                action = previous + rng.normal(scale=10.0 ** rng.integers(-2, 12), size=spec.dof)
                if kind == 1:
                    action[rng.integers(spec.dof)] = rng.choice([np.nan, np.inf, -np.inf])
                elif kind == 2:
                    action = None
                d = s.filter(action, measured, obs_age_s=float(rng.exponential(0.2)))
            assert np.all(np.isfinite(d.targets))
            assert np.all(d.targets >= spec.lower_array - 1e-12) and np.all(d.targets <= spec.upper_array + 1e-12)
            assert np.all(np.abs(d.targets - previous) <= vmax + 1e-9), (i, d.events)
            assert fk.violation(d.targets) == 0, (i, d.events, fk.kinematics.tcp(d.targets))
            for name in counts:
                counts[name] += name in d.events or (name == "hold" and d.holding)
            previous = d.targets
            measured = d.targets + rng.normal(scale=0.01, size=spec.dof)  # the arm lags a little
        assert all(v > 5 for v in counts.values()), counts  # every rule was exercised, not just passed


def test_a_hold_keeps_the_last_command_no_jump_no_sag_and_the_grip():
    s, _ = layer()
    moving = HOME.copy()
    moving[-1] = WIDOWX_250.gripper_closed  # the gripper closed on an object
    for _ in range(3):  # the fingers close at 0.1 m/s
        s.filter(moving, HOME)
    command = s.filter(moving + 0.02 * np.r_[np.ones(6), 0], HOME).targets
    sagging = command - 0.03  # the arm lags below its command; the fingers stopped on the object
    sagging[-1] = 0.025
    for reason in ({"action": None}, {"action": command, "obs_age_s": 9.0}, {"action": np.full(7, np.nan)}):
        d = s.filter(reason.pop("action"), sagging, **reason)
        assert d.holding
        np.testing.assert_allclose(d.targets, command)  # no jump to the measured pose, no sag
        assert d.targets[-1] == WIDOWX_250.gripper_closed  # the grip is kept
    resumed = s.filter(command + 0.5, sagging)
    assert not resumed.holding
    assert np.all(np.abs(resumed.targets - command)[:6] <= 3.14 * 0.1 + 1e-9)  # resuming is rate-limited


def test_joint_workspace_guard_keeps_the_tcp_above_the_table_and_in_the_box():
    from vla_robot.policy.workspace import JointWorkspaceGuard

    s, _ = layer(velocity_scale=0.25)
    fk = JointWorkspaceGuard("widowx250", (-0.6, -0.6, -0.02), (0.6, 0.6, 0.7))
    dive = HOME.copy()
    dive[1] += 1.2  # shoulder forward and down: the gripper would go through the table
    dive[-1] = 0.02
    command = HOME
    events = []
    for _ in range(40):
        d = s.filter(dive, command)
        events += d.events
        command = d.targets
        assert fk.kinematics.tcp(command)[2] >= 0.005 - 1e-9
    assert "workspace_clamp" in events and s.report()["workspace_clamp"] >= 1
    assert fk.kinematics.tcp(command)[2] < 0.02  # it went as low as allowed, not stopped early
    assert command[-1] == pytest.approx(0.02)  # the gripper still obeys
    box = JointWorkspaceGuard("widowx250", (0.1, -0.05, 0.0), (0.3, 0.05, 0.3))
    reach = HOME.copy()
    reach[0] = 1.0  # waist swings the TCP out of the narrow box sideways
    limited, clamped = box.limit(HOME, reach)
    assert clamped and box.violation(limited) == 0 and 0 < limited[0] < 1.0


def test_bad_safety_config_names_the_key():
    with pytest.raises(ValueError, match="velocity_scale"):
        SafetyConfig(velocity_scale=2.0)
    with pytest.raises(ValueError, match="workspace_low"):
        SafetyConfig(workspace_low=(1, 1, 1), workspace_high=(0, 0, 0))


def test_float32_storage_of_a_limit_is_not_a_clamp():
    """The WidowX gripper is commanded exactly at its limits (0.037 open, 0.015 closed). Stored as
    float32 they come back 5e-10 outside; counted, they made half of all eval steps 'position
    clamps'. They are still clipped (never past the limit), but not counted; a real overshoot is."""
    s, _ = layer()
    for gripper in (np.float32(0.037), np.float32(0.015)):
        action = np.array(WIDOWX_250.home)
        action[-1] = float(gripper)
        out = s.filter(action, action)
        assert out.targets[-1] <= WIDOWX_250.upper[-1] and out.targets[-1] >= WIDOWX_250.lower[-1]
        assert "position_clamp" not in out.events
    action = np.array(WIDOWX_250.home)
    action[-1] = 0.0371
    assert "position_clamp" in s.filter(action, action).events
    assert s.report()["position_clamp"] == 1
