"""A bundle written by `vla-train` drives the twin through `vla-robot eval` (in-process and through
the ROS nodes) and `vla-robot deploy`: the whole runtime on a real trained artefact."""

import json

import numpy as np
import pytest

from vla_robot.cli import main as vla_robot

SIZE = 32


@pytest.fixture(scope="module")
def trained_bundle(tmp_path_factory):
    """Three expert episodes recorded from the twin into a real store, then 3 steps of vla-train."""
    from sim import ScriptedExpert, Twin, TwinCamera, TwinConfig, TwinRobot
    from training.cli import main as vla_train
    from vla_robot.data.schema import CameraSpec, StoreSchema
    from vla_robot.data.store import EpisodeStore
    from vla_robot.models.tiny import make_tiny_backbone

    root = tmp_path_factory.mktemp("policy_cli")
    twin = Twin(TwinConfig(cameras=("third_person",), image_size=(SIZE, SIZE), seed=1))
    intr = twin.intrinsics("third_person").as_dict()
    schema = StoreSchema(robot="widowx250", joint_names=twin.spec.joint_names, control_rate_hz=10.0,
                         action_space={"type": "joint_position", "names": list(twin.spec.joint_names)},
                         cameras=(CameraSpec("third_person", SIZE, SIZE, intr, encoding="jpeg", quality=90),),
                         state_dim=7, action_dim=7)
    store = EpisodeStore.create(str(root / "demo.zarr"), schema)
    robot, cam, expert = TwinRobot(twin), TwinCamera(twin, "third_person"), ScriptedExpert(twin)
    robot.connect()
    cam.connect()
    for seed in range(3):
        info = twin.reset(seed)
        expert.reset()
        with store.begin_episode(info["instruction"], operator="expert") as ep:
            for t in range(30):
                state = robot.read_state()
                frame = cam.read()
                action = expert.act()
                ep.append({"state": state.positions.astype(np.float32), "action": action.astype(np.float32),
                           "images": {"third_person": frame.color}, "depth": {}, "stamp": state.stamp,
                           "receive_stamp": state.stamp + 1e-3})
                robot.send_joint_targets(action)
            ep.commit(success=True)
    store.close()
    twin.close()
    backbone = make_tiny_backbone("paligemma", root / "backbone", image_size=SIZE)
    out = root / "run"
    assert vla_train([f"data.stores=[{root / 'demo.zarr'}]", f"model.backbone={backbone}", f"model.image_size={SIZE}",
                      "model.horizon=5", "model.num_action_queries=4", "model.head_hidden=32",
                      "data.batch_size=4", "strategy.name=full", "steps=3",
                      "optim.warmup_steps=1", "val_every=3", "ckpt_every=3", "log_every=1", f"out_dir={out}"]) == 0
    return out / "bundle"


@pytest.mark.ros
@pytest.mark.parametrize("through_ros", [False, True], ids=["in_process", "through_ros"])
def test_eval_cli_with_a_vla_train_bundle(trained_bundle, tmp_path, through_ros):
    out = tmp_path / "eval"
    # Through ROS the twin does not wait for the policy (3x real time: 12 steps are 0.4 s of wall
    # clock, about one CPU inference), so the episode is long enough for chunks to be executed.
    argv = ["eval", "--policy", str(trained_bundle), "--robot", "sim", "--split", "val", "--episodes", "1",
            "--max-steps", "40" if through_ros else "12", "--image-size", str(SIZE), str(SIZE), "--videos", "1", "--out", str(out), "--quiet"]
    assert vla_robot(argv + (["--through-ros"] if through_ros else [])) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["mode"] == ("through_ros" if through_ros else "in_process")
    m = report["metrics"]["val"]
    assert m["episodes"] == 1 and set(m) >= {"exe_sr", "rec_sr", "sr", "episode_length_mean", "safety_events"}
    assert report["episodes"][0]["steps"] >= 10  # a random-ish policy does not settle the cube on a card
    lat = report["runtime"]["latency_ms"]
    assert {"preprocess", "vlm", "head", "total", "end_to_end"} <= set(lat)
    assert report["runtime"]["scheduler"]["chunks_received"] >= 2
    assert report["policy"]["kind"] == "vla" and report["policy"]["cuda_graph_head"] is False
    assert list((out / "videos").glob("val_ep000_*.mp4")) and (out / "summary.png").stat().st_size > 5000


@pytest.mark.ros
def test_deploy_cli_sim_composed_and_direct(trained_bundle, tmp_path):
    common = ["deploy", "--robot", "sim", "--policy", str(trained_bundle), "--seconds", "2.4",
              "--image-size", str(SIZE), str(SIZE)]
    assert vla_robot(common + ["--rate-factor", "3", "--out", str(tmp_path / "ros")]) == 0
    assert vla_robot(common + ["--direct", "--out", str(tmp_path / "direct")]) == 0
    for mode, sub in (("deploy_ros_composed", "ros"), ("deploy_direct", "direct")):
        report = json.loads((tmp_path / sub / "report.json").read_text())
        assert report["mode"] == mode
        assert report["episodes"][0]["steps"] >= 20
        # paced: every period is a tick, or a deadline miss counted as one; the first few periods
        # of the first episode go to the arm node's start and the warm-up
        loop = report["runtime"]["loop"]
        assert loop["ticks"] >= 10 and loop["ticks"] + loop["missed_ticks"] >= 15


def test_eval_cli_layout_seed_fixes_the_layout(tmp_path):
    """--layout-seed reaches the twin: every episode has the same card/cube layout, the emojis differ."""
    from vla_robot.policy.expert_replay import write_expert_replay_bundle

    bundle = write_expert_replay_bundle(tmp_path / "bundle")
    out = tmp_path / "eval"
    assert vla_robot(["eval", "--policy", str(bundle), "--episodes", "2", "--max-steps", "3", "--layout-seed", "7",
                      "--image-size", "32", "32", "--videos", "0", "--out", str(out), "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["eval"]["twin_overrides"] == {"layout_seed": 7}
    a, b = report["episodes"]
    assert a["seed"] != b["seed"] and a["instruction"] != b["instruction"]


def _with_scene(bundle, tmp_path, scene):
    """The trained bundle as `vla-train` writes it from a store that recorded its scene."""
    import shutil

    copy = tmp_path / "bundle"
    shutil.copytree(bundle, copy)
    meta = json.loads((copy / "bundle.json").read_text())
    (copy / "bundle.json").write_text(json.dumps({**meta, "scene": scene}))
    return copy


SCENE = {"source": "twin", "robot": "widowx250", "task": "grinning_face", "n_cards": 2, "layout_seed": 3,
         "split": "train", "cameras": ["third_person"], "image_size": [SIZE, SIZE], "control_rate_hz": 10.0}


def test_eval_defaults_to_the_bundles_scene_and_flags_override_it(trained_bundle, tmp_path, capsys):
    """A bundle trained on a 2-card, fixed-layout, 32x32 store is evaluated there unless told otherwise
    (the demo's bundle failed 4 of 4 episodes in the twin's 4-card random-layout default)."""
    bundle = _with_scene(trained_bundle, tmp_path, SCENE)
    base = ["eval", "--policy", str(bundle), "--episodes", "2", "--max-steps", "2", "--videos", "0", "--quiet"]
    assert vla_robot(base + ["--out", str(tmp_path / "a")]) == 0
    said = capsys.readouterr().out
    assert "2 cards (bundle)" in said and "layout seed 3 (bundle)" in said and f"{SIZE}x{SIZE} images (bundle)" in said
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    assert report["eval"]["n_cards"] == 2 and report["eval"]["twin_overrides"] == {"layout_seed": 3}
    assert report["eval"]["image_size"] == [SIZE, SIZE] and report["policy"]["scene"] == SCENE
    first, second = report["episodes"]
    assert len(first["cards"]) == 2 and first["card_xy"] == second["card_xy"]  # the bundle's fixed layout
    assert vla_robot(base + ["--cards", "3", "--layout-seed", "-1", "--image-size", "48", "48",
                             "--out", str(tmp_path / "b")]) == 0
    said = capsys.readouterr().out
    assert "3 cards (flag)" in said and "random layouts (flag)" in said and "48x48 images (flag)" in said
    report = json.loads((tmp_path / "b" / "report.json").read_text())
    assert report["eval"]["n_cards"] == 3 and report["eval"]["twin_overrides"] == {}
    first, second = report["episodes"]
    assert len(first["cards"]) == 3 and first["card_xy"] != second["card_xy"]


def test_deploy_in_the_twin_defaults_to_the_bundles_scene(trained_bundle, tmp_path, capsys):
    bundle = _with_scene(trained_bundle, tmp_path, SCENE)
    assert vla_robot(["deploy", "--robot", "sim", "--policy", str(bundle), "--direct", "--seconds", "0.3",
                      "--out", str(tmp_path / "direct")]) == 0
    assert "twin scene: 2 cards (bundle), layout seed 3 (bundle)" in capsys.readouterr().out
    episode = json.loads((tmp_path / "direct" / "report.json").read_text())["episodes"][0]
    assert len(episode["cards"]) == 2


def test_a_bundle_without_a_scene_keeps_the_twin_defaults(tmp_path, capsys):
    from vla_robot.policy.expert_replay import write_expert_replay_bundle

    bundle = write_expert_replay_bundle(tmp_path / "bundle")
    assert vla_robot(["eval", "--policy", str(bundle), "--episodes", "1", "--max-steps", "1", "--image-size", "32", "32",
                      "--videos", "0", "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    assert "4 cards (default), random layouts (default), 32x32 images (flag)" in capsys.readouterr().out
