"""The Gymnasium env in both action modes, and the rollout CLI end to end."""

import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sim import GrinningFaceEnv, ScriptedExpert, TwinConfig
from vla_robot.robots.limits import NonFiniteCommandError


@pytest.fixture(params=["joint", "ee_delta"])
def env(request):
    e = GrinningFaceEnv(TwinConfig(image_size=(64, 64)), action_mode=request.param)
    yield e
    e.close()


def test_env_passes_gymnasium_checker(env):
    check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert set(obs["images"]) == {"third_person", "wrist"} and obs["images"]["wrist"].shape == (64, 64, 3)
    assert obs["joint_positions"].shape == (7,) and obs["ee_pose"].shape == (7,)
    assert info["instruction"] == env.instruction and env.twin.episode.target_name in env.instruction


def test_ee_delta_moves_the_tool_by_the_commanded_delta():
    env = GrinningFaceEnv(TwinConfig(image_size=(32, 32)), action_mode="ee_delta")
    obs, _ = env.reset(seed=0)
    start = obs["ee_pose"][:3].copy()
    for _ in range(5):
        obs, *_ = env.step(np.array([0.02, -0.01, 0.0, 0, 0, 0, 1.0]))
    env.robot.hold(3)
    moved = env.twin.ee_pose()[0] - start
    np.testing.assert_allclose(moved, [0.10, -0.05, 0.0], atol=0.01)
    with pytest.raises(NonFiniteCommandError):
        env.step(np.array([np.nan, 0, 0, 0, 0, 0, 1.0]))
    clamps = env.robot.clamp_count
    env.step(np.array([1.0, 0, 0, 0, 0, 0, 1.0]))  # 1 m in one step: clipped to 5 cm and counted
    assert env.robot.clamp_count == clamps + 1
    env.close()


def test_joint_mode_expert_episode_terminates_with_success():
    env = GrinningFaceEnv(TwinConfig(robot="so100", image_size=(32, 32)), action_mode="joint")
    env.reset(seed=4)
    expert = ScriptedExpert(env.twin)
    for _ in range(env.config.max_steps):
        obs, reward, terminated, truncated, info = env.step(expert.act())
        if terminated or truncated:
            break
    assert terminated and reward == 1.0 and info["metrics"]["success"]
    env.close()


def test_rollout_cli_writes_video_and_metrics(tmp_path, capsys):
    from vla_robot.cli import main

    assert main(["rollout", "--robot", "so100", "--episodes", "1", "--width", "160", "--height", "120", "--out", str(tmp_path)]) == 0
    video = tmp_path / "rollout.mp4"
    assert video.stat().st_size > 10_000
    import imageio.v2 as imageio

    frames = imageio.mimread(video, memtest=False)
    assert len(frames) > 20 and frames[0].shape == (120, 160, 3)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["summary"]["episodes"] == 1 and metrics["summary"]["sr"] == 1.0
    assert "Exe. SR" in capsys.readouterr().out
