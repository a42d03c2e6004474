"""The scripted expert succeeds physically (real contacts, no welds) on a seeded sample per arm.

The full 100-episode check per arm is `python bench/bench_twin.py --expert-episodes 100`.
"""

import pytest

from sim import ScriptedExpert, Twin, TwinConfig, TwinRobot, summarise
from sim.emoji import split_ids


def _run(robot: str, task: str, seeds, split: str = "train"):
    tw = Twin(TwinConfig(robot=robot, task=task, split=split, cameras=("third_person",), image_size=(64, 48)))
    rob, ex = TwinRobot(tw), ScriptedExpert(tw)
    rob.connect()
    results = []
    for seed in seeds:
        tw.reset(seed)
        steps = 0
        while not ex.done and steps < tw.config.max_steps:
            rob.send_joint_targets(ex.act(rob.read_state()))
            steps += 1
        rob.hold(3)
        results.append(tw.evaluate())
    tw.close()
    return results, rob.clamp_count


@pytest.mark.parametrize("robot", ["widowx250", "so100"])
def test_pick_and_place_expert_meets_bar(robot):
    results, clamps = _run(robot, "grinning_face", range(100, 106))
    s = summarise(results)
    assert s["sr"] >= 5 / 6, results
    assert clamps == 0, "the expert should never need its targets clamped"


def test_expert_on_validation_emojis():
    results, _ = _run("widowx250", "grinning_face", range(200, 203), split="val")
    assert summarise(results)["sr"] == 1.0
    assert all(r["target"] in split_ids("val") for r in results)


@pytest.mark.parametrize("robot", ["widowx250", "so100"])
@pytest.mark.parametrize("task", ["reach", "push"])
def test_pretraining_task_experts(robot, task):
    results, _ = _run(robot, task, range(3))
    assert summarise(results)["sr"] == 1.0, results


def test_doing_nothing_fails():
    tw = Twin(TwinConfig(cameras=("third_person",), image_size=(64, 48)))
    rob = TwinRobot(tw)
    rob.connect()
    tw.reset(1)
    rob.hold(10)
    r = tw.evaluate()
    assert not r["success"] and not r["executed"]
    tw.close()
