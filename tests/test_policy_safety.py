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
    s, _ = layer()
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
    """Fuzz: whatever the policy emits, the command is finite and inside position limits."""
    rng = np.random.default_rng(0)
    for spec in (WIDOWX_250, SO100):
        s = SafetyLayer(spec, SafetyConfig(), period_s=1 / 30)
        measured = np.asarray(spec.home)
        for _ in range(300):
            kind = rng.integers(4)
            action = rng.normal(scale=10 ** rng.integers(0, 12), size=spec.dof)
            if kind == 1:
                action[rng.integers(spec.dof)] = rng.choice([np.nan, np.inf, -np.inf])
            elif kind == 2:
                action = None
            d = s.filter(action, measured, obs_age_s=float(rng.exponential(0.2)))
            assert np.all(np.isfinite(d.targets))
            assert np.all(d.targets >= spec.lower_array - 1e-12) and np.all(d.targets <= spec.upper_array + 1e-12)
            measured = d.targets


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
