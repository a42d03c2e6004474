"""Bad configs fail at load naming what is allowed; bad actions never reach the physics."""

import numpy as np
import pytest

from sim import Twin, TwinConfig, TwinRobot
from sim import emoji as E
from vla_robot.robots import Robot
from vla_robot.robots.limits import NonFiniteCommandError


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"robot": "ur5"}, r"robot='ur5' is unknown; choose one of \('widowx250', 'so100'\)"),
        ({"task": "stack"}, r"choose one of \('grinning_face', 'reach', 'push'\)"),
        ({"split": "test"}, r"choose one of \('train', 'val'\)"),
        ({"emoji_ids": ("not_an_emoji",)}, r"unknown emoji 'not_an_emoji'.*python -m sim.list_emojis"),
        ({"emoji_ids": ("grinning_face",), "split": "val"}, r"not in split 'val'"),
        ({"n_cards": 40}, r"at most \d+ cards fit"),
        ({"n_cards": 0}, r"n_cards=0 must be >= 1"),
        ({"n_cards": 3, "emoji_ids": ("grinning_face", "ghost")}, r"needs that many distinct emojis"),
        ({"cameras": ("top",)}, r"unknown camera 'top'"),
        ({"image_size": (8, 8)}, r"integers in \[16, 2048\]"),
        ({"control_rate_hz": 0}, r"control_rate_hz=0 must be in"),
    ],
)
def test_bad_config_fails_at_load_with_allowed_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TwinConfig(**kwargs)


def test_config_round_trips_through_dict_and_rejects_unknown_keys():
    cfg = TwinConfig(robot="so100", emoji_ids=("ghost", "robot"), n_cards=2, camera_sizes={"wrist": (64, 48)})
    assert TwinConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match=r"unknown keys \['colour'\]; allowed keys are"):
        TwinConfig.from_dict({"colour": "red"})


def test_emoji_catalogue_split_and_names():
    train, val = E.split_ids("train"), E.split_ids("val")
    assert len(train) == 40 and len(val) == 20 and not set(train) & set(val)
    g = E.get_emoji("grinning face")
    assert g.char == "\U0001F600" and g.id == "grinning_face" and g.split == "train"
    assert E.get_emoji("\U0001F984").name == "unicorn"  # names come from the emoji package's CLDR data
    img = E.card_image("ghost")
    assert img.shape == (E.TEXTURE_SIZE, E.TEXTURE_SIZE, 3) and img.std() > 20
    assert len({E.instruction("ghost", i) for i in range(len(E.TEMPLATES))}) == len(E.TEMPLATES) >= 3


@pytest.fixture(scope="module")
def robot():
    tw = Twin(TwinConfig(cameras=("third_person",), image_size=(64, 48)))
    r = TwinRobot(tw)
    r.connect()
    yield r
    tw.close()


def test_twin_robot_implements_robot_protocol(robot):
    assert isinstance(robot, Robot)
    s = robot.read_state()
    assert s.positions.shape == (robot.spec.dof,) and s.velocities.shape == (robot.spec.dof,)
    assert s.gripper == pytest.approx(robot.spec.home[-1], abs=1e-3)


def test_nan_target_raises_and_physics_does_not_advance(robot):
    t0, q0 = robot.twin.sim_time, robot.twin.data.qpos.copy()
    bad = np.array(robot.spec.home)
    bad[2] = np.nan
    with pytest.raises(NonFiniteCommandError, match=r"non-finite target for joints \['elbow'\]"):
        robot.send_joint_targets(bad)
    assert robot.twin.sim_time == t0 and np.array_equal(robot.twin.data.qpos, q0)
    with pytest.raises(ValueError, match="expected 7 joint targets"):
        robot.send_joint_targets(np.zeros(3))


def test_out_of_range_target_is_clipped_and_counted(robot):
    before = robot.clamp_count
    t0 = robot.twin.sim_time
    wild = np.array(robot.spec.home)
    wild[0] = 10.0  # waist far beyond +3.14
    wild[6] = 1.0  # finger far beyond 0.037 m
    held = robot.twin.data.ctrl.copy()
    vel_before = robot.clamp.velocity_clamps
    robot.send_joint_targets(wild)
    assert robot.clamp_count == before + 1
    assert robot.clamp.velocity_clamps == vel_before + 1  # and the waist may move 0.314 rad per period at most
    assert robot.twin.sim_time == pytest.approx(t0 + robot.twin.control_period)
    step = robot.spec.max_velocity_array * robot.twin.control_period
    np.testing.assert_allclose(robot.last_targets[[0, 6]], [min(3.14, held[0] + step[0]), 0.037])
    np.testing.assert_allclose(robot.twin.data.ctrl[[0, 6]], robot.last_targets[[0, 6]])
    assert np.all(np.isfinite(robot.twin.data.qpos))
    for _ in range(12):  # held for long enough, the target reaches the position limit and stays there
        robot.send_joint_targets(wild)
    np.testing.assert_allclose(robot.last_targets[[0, 6]], [3.14, 0.037])


def test_send_before_connect_is_refused():
    tw = Twin(TwinConfig(cameras=("third_person",), image_size=(64, 48)))
    with pytest.raises(RuntimeError, match="connect"):
        TwinRobot(tw).send_joint_targets(np.array(tw.spec.home))
    with pytest.raises(ValueError, match="unknown camera 'top'"):
        tw.render("top")
    tw.close()


def test_control_rate_sets_the_lock_step_period():
    tw = Twin(TwinConfig(cameras=("third_person",), image_size=(32, 32), control_rate_hz=20))
    r = TwinRobot(tw)
    r.connect()
    r.send_joint_targets(np.array(tw.spec.home))
    r.hold(2)
    assert tw.control_period == pytest.approx(0.05) and tw.sim_time == pytest.approx(0.15)
    tw.close()


def test_unseeded_resets_follow_the_config_seed():
    def infos(seed):
        tw = Twin(TwinConfig(cameras=("third_person",), image_size=(32, 32), seed=seed))
        out = [tw.reset()["instruction"] + str(tw.layout.cube_xy) for _ in range(3)]
        tw.close()
        return out

    assert infos(11) == infos(11)
    assert infos(11) != infos(12)
    assert len(set(infos(11))) == 3
