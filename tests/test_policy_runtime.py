"""The runtime on the CPU: same output as the training-time forward, the graph path off, the loop in the twin."""

import dataclasses
import time

import numpy as np
import pytest
import torch

from vla_robot.policy.config import ChunkConfig, RuntimeConfig, SafetyConfig
from vla_robot.policy.cuda_graph import CudaGraphRunner
from vla_robot.policy.loop import ControlLoop
from vla_robot.policy.types import Observation

STATS = {
    "action": {"q01": [-1.0] * 7, "q99": [1.0] * 7, "min": [0.015] * 7, "max": [0.037] * 7},
    "state": {"mean": [0.1] * 7, "std": [0.5] * 7},
}


@pytest.fixture(scope="module")
def tiny_bundle(tmp_path_factory):
    from vla_robot.models.bundle import save_bundle
    from vla_robot.models.config import VLAConfig
    from vla_robot.models.tiny import make_tiny_backbone
    from vla_robot.models.vla import VLAModel

    root = tmp_path_factory.mktemp("policy_runtime")
    backbone = make_tiny_backbone("paligemma", root / "backbone", image_size=32, hidden_size=32)
    cfg = VLAConfig(family="paligemma", backbone=str(backbone), action_dim=7, horizon=6, state_dim=7,
                    cameras=("third_person",), image_size=32, gripper_dims=(6,), head_hidden=32)
    torch.manual_seed(0)
    model = VLAModel.from_pretrained_backbone(cfg, STATS)
    with torch.no_grad():  # a non-trivial head so that the chunk depends on every input
        for p in model.head.parameters():
            p.normal_(0, 0.3)
    return save_bundle(model, root / "bundle", action_space={"type": "joint_position", "robot": "widowx250"})


def random_obs(rng, step=0):
    return Observation(
        images={"third_person": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)},
        state=rng.normal(size=7),
        instruction="put the cube on the grinning face",
        step=step,
    )


def test_cpu_runtime_matches_training_forward_exactly(tiny_bundle):
    from vla_robot.policy.loading import load_policy
    from vla_robot.policy.vla_policy import VLAPolicy

    policy = load_policy(tiny_bundle, RuntimeConfig(device="cpu"))
    assert isinstance(policy, VLAPolicy)
    assert not policy.head.active  # graph path switched off on the CPU automatically
    model = policy.model
    rng = np.random.default_rng(1)
    for _ in range(3):
        obs = random_obs(rng)
        chunk, timings = policy.infer(obs)
        images = {"third_person": torch.from_numpy(obs.images["third_person"]).permute(2, 0, 1)[None]}
        state = torch.from_numpy(obs.state).float()[None]
        with torch.no_grad():
            # the training-time forward: the loss path's action_head on encode_inputs, then de-normalisation
            train_pred = model.action_head(model.encode_inputs(model.preprocess(images, [obs.instruction])), state)
            train_chunk = model.normalizer.denormalise(train_pred)[0]
            predict = model.predict_action(images, [obs.instruction], state)[0]
        assert chunk.shape == (6, 7)
        np.testing.assert_array_equal(chunk, train_chunk.double().numpy())
        np.testing.assert_array_equal(chunk, predict.double().numpy())
        assert set(timings) >= {"preprocess", "vlm", "head", "total"}
        assert timings["total"] >= timings["vlm"] > 0
    other = random_obs(np.random.default_rng(2))
    assert not np.array_equal(policy.infer(other)[0], chunk)  # the output really depends on the input


def test_graph_runner_is_eager_on_cpu_and_refuses_forced_graph():
    module = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.GELU())
    x = torch.randn(2, 4)
    runner = CudaGraphRunner(module)
    assert not runner.active
    torch.testing.assert_close(runner(x), module(x), rtol=0, atol=0)
    assert runner.captures == 0
    with pytest.raises(RuntimeError, match="CUDA"):
        CudaGraphRunner(module, enabled=True)(x)


def test_bad_runtime_config_names_allowed_values():
    with pytest.raises(ValueError, match="bfloat16"):
        RuntimeConfig(dtype="int8")
    with pytest.raises(ValueError, match="cuda"):
        RuntimeConfig(device="tpu")


class StepStampPolicy:
    """Synthetic policy with a known inference time; action k of the chunk for step t encodes t + k."""

    action_space = "joint"
    camera_names = ("third_person",)
    robot = "widowx250"

    def __init__(self, chunk_size=8, delay_s=0.0, nan_at=None):
        self.chunk_size, self.action_dim, self.delay_s, self.nan_at = chunk_size, 7, delay_s, nan_at
        self.calls = 0
        self.threads = []  # the thread of every inference (warm-up must run where inference will)
        self.gripper = 0.03  # the episode's marker, set on reset

    def reset(self, instruction, episode=None):
        self.gripper = float((episode or {}).get("gripper", 0.03))

    def describe(self):
        return {"kind": "synthetic"}

    def infer(self, obs):
        assert obs.images["third_person"].dtype == np.uint8
        import threading

        self.calls += 1
        self.threads.append(threading.current_thread().name)
        gripper = self.gripper  # read before the (slow) inference: the chunk belongs to that episode
        time.sleep(self.delay_s)
        chunk = np.tile(np.asarray([0.0, -0.6, 0.6, 0.0, 1.2, 0.0, gripper]), (self.chunk_size, 1))
        chunk[:, 0] = 0.001 * (obs.step + np.arange(self.chunk_size))  # waist angle names the step
        if self.nan_at is not None and obs.step <= self.nan_at < obs.step + self.chunk_size:
            chunk[self.nan_at - obs.step, 2] = np.nan
        return chunk, {"total": self.delay_s}


@pytest.fixture()
def twin():
    from sim import Twin, TwinConfig

    t = Twin(TwinConfig(cameras=("third_person",), image_size=(32, 32), seed=3))
    yield t
    t.close()


def make_loop(twin, policy, **runtime):
    from sim import TwinCamera, TwinRobot

    robot = TwinRobot(twin)
    robot.connect()
    cam = TwinCamera(twin, "third_person")
    cam.connect()
    return ControlLoop(robot, {"third_person": cam}, policy, RuntimeConfig(**runtime), pace=runtime.get("asynchronous", False))


def test_sync_loop_in_twin_executes_the_action_made_for_each_step(twin):
    policy = StepStampPolicy(chunk_size=5, nan_at=12)
    loop = make_loop(twin, policy, asynchronous=False, chunk=ChunkConfig(request_threshold=0.0))
    loop.start_episode("test")
    records = loop.run(20)
    waist = [r.targets[0] for r in records]
    for r in records:
        if r.step != 12:
            assert r.targets[0] == pytest.approx(0.001 * r.step)
    assert records[12].holding and records[12].events == ["non_finite_action"]
    assert policy.calls == 4 and twin.steps == 20
    assert loop.report()["safety"]["non_finite_action"] == 1
    assert np.all(np.diff(np.delete(waist, 12)) > 0)


class LateCamera:
    """Frames that reach the loop a second after their receipt: a process the OS left without a core."""

    def __init__(self, camera):
        self.camera = camera

    def read(self):
        return dataclasses.replace(self.camera.read(), receive_stamp=time.time() - 1.0)


def test_lock_step_ages_frames_in_sim_time_and_a_paced_loop_in_wall_time(twin):
    """In lock-step the world waits for the policy, so a late process does not make a frame stale
    (evals on a busy machine held on wall-clock age); on the wall clock the watchdog still holds."""
    from sim import TwinCamera, TwinRobot

    robot = TwinRobot(twin)
    robot.connect()
    cam = TwinCamera(twin, "third_person")
    cam.connect()
    reports = {}
    for pace in (False, True):
        policy = StepStampPolicy(chunk_size=5)
        loop = ControlLoop(robot, {"third_person": LateCamera(cam)}, policy,
                           RuntimeConfig(asynchronous=False, chunk=ChunkConfig(request_threshold=0.0)), pace=pace)
        loop.start_episode("test")
        records = loop.run(10)
        reports[pace] = (sum(r.holding for r in records), loop.report()["safety"]["stale_observation"], policy.calls)
    assert reports[False] == (0, 0, 2)  # every step acted on; a chunk every 5 steps
    assert reports[True][0] == 10 and reports[True][1] == 10 and reports[True][2] == 0


def test_async_paced_loop_skips_stale_actions_and_never_repeats(twin):
    """Inference takes ~2.5 periods at 20 Hz; the arm must always get the action made for the current step."""
    policy = StepStampPolicy(chunk_size=16, delay_s=0.12)  # request at <= 8 queued: 400 ms of slack
    loop = make_loop(twin, policy, asynchronous=True, control_hz=20.0,
                     chunk=ChunkConfig(request_threshold=0.5), safety=SafetyConfig(max_inference_stall_s=5.0))
    try:
        loop.start_episode("test")
        records = loop.run(40)
    finally:
        loop.close()
    acting = [r for r in records if not r.holding]
    assert len(acting) >= 25
    for r in acting:
        assert r.targets[0] == pytest.approx(0.001 * r.step)  # never a stale or repeated step
    rep = loop.report()
    assert rep["scheduler"]["stale_actions_skipped"] >= 2 * rep["scheduler"]["chunks_received"] - 2
    assert rep["scheduler"]["delay_steps_max"] >= 2
    holds_after_start = [r for r in records[10:] if r.holding]
    assert not holds_after_start  # the threshold makes the next chunk land before the queue drains
    assert "end_to_end" in rep["latency_ms"] and rep["latency_ms"]["end_to_end"]["p50_ms"] >= 100


def test_stalled_inference_makes_the_loop_hold(twin):
    policy = StepStampPolicy(chunk_size=4, delay_s=0.6)
    loop = make_loop(twin, policy, asynchronous=True, control_hz=20.0,
                     safety=SafetyConfig(max_inference_stall_s=0.2))
    try:
        loop.start_episode("test")
        records = loop.run(10)
    finally:
        loop.close()
    assert all(r.holding for r in records)
    assert loop.report()["safety"]["inference_stall"] >= 3


def test_prompt_bucket_pads_left_and_keeps_the_chunk_close(tiny_bundle):
    """Bucketing (for one compiled VLM graph per bucket) pads on the left, masked, and moves the output
    only by the position shift; two instructions of one bucket give inputs of one shape."""
    from vla_robot.policy.loading import load_policy
    from vla_robot.policy.vla_policy import pad_prompt

    inputs = {"input_ids": torch.tensor([[5, 6, 7]]), "attention_mask": torch.ones(1, 3, dtype=torch.long),
              "token_type_ids": torch.zeros(1, 3, dtype=torch.long), "pixel_values": torch.zeros(1, 3, 4, 4)}
    out = pad_prompt(inputs, 8, pad_id=0)
    assert out["input_ids"].tolist() == [[0, 0, 0, 0, 0, 5, 6, 7]]
    assert out["attention_mask"].tolist() == [[0, 0, 0, 0, 0, 1, 1, 1]]
    assert out["pixel_values"] is inputs["pixel_values"] and pad_prompt(inputs, 0, 0) is inputs

    plain = load_policy(tiny_bundle, RuntimeConfig())
    bucketed = load_policy(tiny_bundle, RuntimeConfig(prompt_bucket=32))
    model = bucketed.model
    rng = np.random.default_rng(3)
    obs = random_obs(rng)
    shapes = set()
    for text in ("put the cube on the cat", "place the block onto the smiling face card"):
        images = {"third_person": torch.from_numpy(obs.images["third_person"]).permute(2, 0, 1)[None]}
        shapes.add(pad_prompt(model.preprocess(images, [text]), 32, bucketed.pad_id)["input_ids"].shape)
    assert len(shapes) == 1
    a, b = plain.infer(obs)[0], bucketed.infer(obs)[0]
    assert a.shape == b.shape and np.all(np.isfinite(b))
    # close: float32 round-off of the shifted positions, three orders below what another observation moves
    other = plain.infer(random_obs(np.random.default_rng(4)))[0]
    assert np.abs(a - other).max() > 0.1  # the chunk really depends on the input ...
    np.testing.assert_allclose(b, a, atol=1e-4)  # ... and padding does not change it
    with pytest.raises(ValueError, match="prompt_bucket"):
        RuntimeConfig(prompt_bucket=-1)
    with pytest.raises(ValueError, match="vlm_compile"):
        RuntimeConfig(vlm_compile="max")


def test_warmup_runs_on_the_thread_that_runs_inference(twin):
    for asynchronous, expected in ((True, "policy-inference"), (False, "MainThread")):
        policy = StepStampPolicy(chunk_size=4)
        loop = make_loop(twin, policy, asynchronous=asynchronous, control_hz=20.0)
        try:
            loop.start_episode("test")
            loop.warmup(calls=2)
            assert policy.threads == [expected] * 2
            loop.run(6)
            assert set(policy.threads) == {expected}  # and inference itself ran there too
        finally:
            loop.close()


def test_a_late_chunk_never_leaks_into_the_next_episode(twin):
    """Inference for episode 1 is still running when episode 2 starts: its chunk is discarded."""
    policy = StepStampPolicy(chunk_size=30, delay_s=0.4)
    loop = make_loop(twin, policy, asynchronous=True, control_hz=20.0, safety=SafetyConfig(max_inference_stall_s=5.0))
    try:
        loop.start_episode("first", {"gripper": 0.02})
        loop.run(2)  # the first request is in flight (0.4 s)
        assert loop.scheduler.in_flight
        loop.start_episode("second", {"gripper": 0.035})  # does not wait for it
        records = loop.run(30)
    finally:
        loop.close()
    assert loop.counters["late_chunks_discarded"] == 1
    acting = [r for r in records if not r.holding]
    assert acting and all(r.targets[-1] == pytest.approx(0.035) for r in acting)  # only episode 2's chunks ran
    assert all(r.holding for r in records[:5])  # held while episode 2's first chunk was computed


def test_late_ticks_skip_the_actions_of_the_missed_steps_without_a_jump(twin):
    """A tick that starts periods late (a GC pause, a starved CPU) skips the missed steps by age:
    the action executed is the one for the current step, and the command moves no faster than allowed."""
    policy = StepStampPolicy(chunk_size=40)
    loop = make_loop(twin, policy, asynchronous=True, control_hz=20.0,
                     chunk=ChunkConfig(request_threshold=0.2), safety=SafetyConfig(max_inference_stall_s=5.0))
    try:
        loop.start_episode("test")
        records = loop.run(5)
        time.sleep(0.2)  # four periods: the next tick misses its deadline
        records += loop.run(10)
    finally:
        loop.close()
    assert loop.counters["missed_ticks"] >= 3 and loop.counters["overruns"] >= 1
    assert loop.counters["actions_skipped_late"] >= 3  # the actions for the missed steps, by age
    steps = [r.step for r in records]
    assert max(b - a for a, b in zip(steps, steps[1:])) >= 4  # the step index followed the wall clock
    acting = [r for r in records if not r.holding]
    vmax = np.asarray(twin.spec.max_velocity) * (1 / 20.0)
    for a, b in zip(records, records[1:]):
        assert np.all(np.abs(b.targets - a.targets) <= vmax + 1e-9)  # no jump: at most one period of motion
    late = [r for r in acting if r.step > 5]
    assert late and all(r.targets[0] <= 0.001 * r.step + 1e-12 for r in late)  # never ahead of its step
    assert late[-1].targets[0] == pytest.approx(0.001 * late[-1].step)  # and catches up with it


class BadChunkPolicy(StepStampPolicy):
    """Every other chunk has the wrong action width (a bundle/robot mismatch that slipped through)."""

    def infer(self, obs):
        chunk, timings = super().infer(obs)
        return (chunk[:, :5] if self.calls % 2 == 0 else chunk), timings


def test_a_misshaped_chunk_holds_and_the_loop_keeps_running(twin):
    policy = BadChunkPolicy(chunk_size=4)
    loop = make_loop(twin, policy, asynchronous=False, chunk=ChunkConfig(request_threshold=0.0))
    loop.start_episode("test")
    records = loop.run(12)  # never raises
    assert loop.counters["bad_chunks"] >= 2
    assert loop.report()["safety"]["bad_chunk"] == loop.counters["bad_chunks"]
    assert any(r.holding for r in records) and any(not r.holding for r in records)


def test_an_ik_error_holds_instead_of_ending_the_tick():
    from vla_robot.policy.config import SafetyConfig
    from vla_robot.policy.safety import SafetyLayer
    from vla_robot.robots.specs import WIDOWX_250

    s = SafetyLayer(WIDOWX_250, SafetyConfig(), period_s=0.1)
    home = np.asarray(WIDOWX_250.home)

    def ik(action):
        raise np.linalg.LinAlgError("singular Jacobian")

    d = s.filter_ee(np.array([0.01, 0, 0, 0, 0, 0, 0.03]), np.array([0.3, 0.0, 0.2]), home, ik)
    assert d.holding and d.events == ["ik_error"] and s.report()["ik_error"] == 1


def test_the_plumbing_sweep_stays_clear_of_the_table_and_inside_the_limits():
    """The fault tests' contact-free motion: smooth, inside the joint limits and far above the table."""
    from sim.kinematics import ArmKinematics
    from vla_robot.policy.expert_replay import sweep_plan
    from vla_robot.robots.specs import WIDOWX_250

    plan = sweep_plan(WIDOWX_250, control_hz=30.0, seconds=8.0)
    assert plan.shape == (240, 7)
    assert np.all(plan >= WIDOWX_250.lower_array) and np.all(plan <= WIDOWX_250.upper_array)
    steps = np.abs(np.diff(plan, axis=0)).max(axis=0)
    assert steps[0] > 0.02 and np.all(steps * 30 <= WIDOWX_250.max_velocity_array)  # moving, within the speed limits
    fk = ArmKinematics("widowx250")
    assert min(fk.tcp(q)[2] for q in plan[::5]) > 0.1
