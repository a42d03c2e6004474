"""The control loop: one tick = read state, maybe request a chunk, pick an action, make it safe, send it.

It is shared by ``vla-robot deploy``, the ROS 2 policy node and closed-loop evaluation.
Two clocks are supported:

* ``pace=True`` (a real arm, or the twin in real time): tick ``k`` happens at
  ``t0 + k * wall_period`` on the wall clock. A tick that starts a whole period late is a
  deadline miss: the missed ticks are skipped (counted), and with them the actions meant
  for those steps (skipped by age, counted), so the arm never plays the past.
* ``pace=False`` (lock-step twin): tick ``k`` is simply the k-th call; physics does not
  move while the policy thinks, so a synchronous run is deterministic. The watchdog's ages
  are then simulated time too: the frame a tick reads shows the world as it is, however long
  the process waited for a core. On the wall clock, 2 of 4 lock-stepped 200-episode evals
  sharing 2 cores tripped one stale-observation hold each (stop 22).

With ``asynchronous=True`` inference runs on a worker thread: the next chunk is computed
while the current one executes, and its stale head is skipped on arrival. Warm-up runs on
the thread that will run inference (the worker, or the caller's thread when synchronous):
CUDA graphs and compiled graphs belong to the thread and stream that captured them.

A chunk belongs to the episode whose observation produced it: one that arrives after
``start_episode`` began the next episode is discarded, never executed. A misshaped chunk,
a failed inference or a failed IK solve holds position (counted) instead of ending the tick.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from vla_robot.cameras.interface import Camera
from vla_robot.policy.config import RuntimeConfig
from vla_robot.policy.latency import LatencyStats
from vla_robot.policy.safety import SafetyDecision, SafetyLayer
from vla_robot.policy.scheduler import ChunkScheduler
from vla_robot.policy.types import ChunkPolicy, Observation
from vla_robot.robots.interface import Robot

log = logging.getLogger(__name__)


@dataclass
class StepRecord:
    step: int
    targets: np.ndarray
    holding: bool
    events: list[str] = field(default_factory=list)
    queue_depth: int = 0


@dataclass
class EndEffectorAdapter:
    """How an ``ee_delta`` policy reaches a joint-position arm: the current EE position and IK."""

    position: Callable[[], np.ndarray]
    to_joints: Callable[[np.ndarray], np.ndarray]


class InferenceWorker:
    """One background thread, one request at a time (the scheduler never overlaps two).

    Results are ``(episode, obs, chunk, timings, error)``: the episode the request was made in
    travels with it, so the loop can drop a chunk that outlived its episode.
    """

    def __init__(self, policy: ChunkPolicy) -> None:
        self.policy = policy
        self._requests: queue.Queue = queue.Queue(maxsize=2)
        self._results: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="policy-inference", daemon=True)
        self._thread.start()

    def submit(self, obs: Observation, episode: int = 0) -> bool:
        """Queue one inference; False (nothing queued) when the worker is still busy with older ones."""
        try:
            self._requests.put_nowait((episode, obs))
            return True
        except queue.Full:
            return False

    def call(self, fn: Callable[[], object], timeout: float | None = None):
        """Run ``fn`` on the inference thread and return its result (warm-up, graph capture)."""
        done = threading.Event()
        box: dict = {}

        def job() -> None:
            try:
                box["result"] = fn()
            except BaseException as exc:  # handed back to the caller
                box["error"] = exc
            finally:
                done.set()

        self._requests.put(job, timeout=timeout)
        if not done.wait(timeout):
            raise TimeoutError(f"the inference thread did not finish the call within {timeout}s")
        if "error" in box:
            raise box["error"]
        return box["result"]

    def poll(self):
        try:
            return self._results.get_nowait()
        except queue.Empty:
            return None

    def wait(self, timeout: float | None = None):
        try:
            return self._results.get(timeout=timeout)
        except queue.Empty:
            return None

    def _run(self) -> None:
        while True:
            item = self._requests.get()
            if item is None:
                return
            if callable(item):
                item()
                continue
            episode, obs = item
            try:
                chunk, timings = self.policy.infer(obs)
                self._results.put((episode, obs, chunk, timings, None))
            except Exception as exc:  # reported by the loop, which then holds position
                self._results.put((episode, obs, None, {}, exc))

    def close(self) -> None:
        try:
            self._requests.put(None, timeout=1.0)
        except queue.Full:
            pass
        self._thread.join(timeout=5.0)


class ControlLoop:
    def __init__(
        self,
        robot: Robot,
        cameras: dict[str, Camera],
        policy: ChunkPolicy,
        config: RuntimeConfig,
        pace: bool = False,
        state_age: Callable[[], float] | None = None,
        end_effector: EndEffectorAdapter | None = None,
        on_alert: Callable[[str, str], None] | None = None,
        wall_period: float | None = None,
    ) -> None:
        missing = [c for c in policy.camera_names if c not in cameras]
        if missing:
            raise ValueError(f"policy needs cameras {missing}; available: {sorted(cameras)}")
        if policy.action_space == "ee_delta" and end_effector is None:
            raise ValueError("an ee_delta policy needs an EndEffectorAdapter (EE position + IK) for this arm")
        if policy.action_space == "joint" and policy.action_dim != robot.spec.dof:
            raise ValueError(
                f"policy outputs {policy.action_dim} joint targets but {robot.spec.name} has {robot.spec.dof} "
                f"{robot.spec.joint_names}"
            )
        names = tuple(getattr(policy, "joint_names", ()) or ())
        if policy.action_space == "joint" and names and names != tuple(robot.spec.joint_names):
            raise ValueError(f"policy was trained on joints {list(names)} but {robot.spec.name} has "
                             f"{list(robot.spec.joint_names)}; refusing to drive it")
        self.robot, self.cameras, self.policy, self.config = robot, cameras, policy, config
        self.pace = pace
        self.state_age = state_age
        self.end_effector = end_effector
        self.period = config.period_s
        self.wall_period = wall_period or self.period  # nominal wall-clock tick (shorter when sim runs faster)
        self.scheduler = ChunkScheduler(policy.chunk_size, policy.action_dim, config.chunk)
        self.safety = SafetyLayer(robot.spec, config.safety, self.period, on_alert=on_alert)
        self.latency = LatencyStats()
        self.worker = InferenceWorker(policy) if config.asynchronous else None
        self.instruction = ""
        self.episode = 0
        # Called right before a command goes out; False drops it. The control thread closes it at a stop,
        # so a tick that was already under way (a starved thread, a long synchronous inference) cannot
        # publish after the stop: it sent a previous episode's pose after a twin reset once.
        self.send_gate: Callable[[], bool] = lambda: True
        self.counters = {"ticks": 0, "overruns": 0, "missed_ticks": 0, "actions_skipped_late": 0,
                         "inference_errors": 0, "requests": 0, "bad_chunks": 0, "late_chunks_discarded": 0}
        self.running = True
        self._reset_clock()

    # -- episode -------------------------------------------------------------------------
    def reset_clock(self) -> None:
        """Step 0 of the episode is now."""
        self._reset_clock()

    def _reset_clock(self) -> None:
        self.step_index = 0
        self._t0 = time.perf_counter()
        self._last_send: float | None = None
        self._last_action_time = self._clock()
        self._chunk_obs_time: float | None = None
        self._new_chunk = False

    def start_episode(self, instruction: str, episode: dict | None = None) -> None:
        """Begin an episode. A chunk still being computed for the previous one is not waited for:
        it arrives tagged with its episode and is discarded (``late_chunks_discarded``)."""
        self.episode += 1
        self.instruction = instruction
        self.policy.reset(instruction, episode)
        self.scheduler.reset()
        self.safety.reset()
        self._reset_clock()

    def warmup(self, calls: int = 2) -> float:
        """Run inference on live observations without acting, so first-call costs (CUDA-graph
        capture, compilation, allocator growth) never land inside a control period. It runs on
        the thread that will run inference: the worker when asynchronous (graphs and compiled
        code are bound to the capturing thread's stream), the caller's thread otherwise. Seconds."""
        t0 = time.perf_counter()
        for _ in range(calls):
            obs = self.observe()
            if self.worker is not None:
                self.worker.call(lambda obs=obs: self.policy.infer(obs), timeout=600.0)
            else:
                self.policy.infer(obs)
        self._reset_clock()
        return time.perf_counter() - t0

    # -- one tick -----------------------------------------------------------------------
    def _clock(self) -> float:
        """The watchdog's clock: wall seconds when paced, the ticks' simulated seconds in lock-step."""
        return time.perf_counter() if self.pace else self.step_index * self.period

    def _now_step(self) -> int:
        return int((time.perf_counter() - self._t0) / self.wall_period) if self.pace else self.step_index

    def _skip_late(self, missed: int) -> None:
        """Ticks ``step_index .. step_index + missed`` are gone: count them and the actions they held."""
        self.counters["overruns"] += 1
        self.counters["missed_ticks"] += missed
        self.counters["actions_skipped_late"] += self.scheduler.available(self.step_index, self.step_index + missed)
        self.step_index += missed

    def observe(self) -> Observation:
        state = self.robot.read_state()
        images, stamp, received = {}, state.stamp, time.time()
        for name in self.policy.camera_names:
            frame = self.cameras[name].read()
            images[name] = frame.color
            stamp = frame.stamp
            received = min(received, frame.receive_stamp)
        return Observation(images, state.positions, self.instruction, stamp, received, self.step_index)

    def _ingest(self, result) -> None:
        episode, obs, chunk, timings, error = result
        if episode != self.episode:
            self.counters["late_chunks_discarded"] += 1  # made for an episode that has ended
            return
        if error is not None:
            self.counters["inference_errors"] += 1
            log.error("inference failed at step %d: %s", obs.step, error)
            self.scheduler.cancel_request()
            return
        self.latency.extend(timings)
        try:
            self.scheduler.add_chunk(chunk, obs_step=obs.step, arrival_step=self.step_index)
        except ValueError as exc:  # a misshaped chunk: hold (the queue stays as it was), never crash the tick
            self.counters["bad_chunks"] += 1
            self.safety.alert("bad_chunk", f"chunk from step {obs.step} refused: {exc}")
            self.scheduler.cancel_request()
            return
        self._chunk_obs_time = obs.receive_time
        self._new_chunk = True

    def tick(self) -> StepRecord:
        if self.pace:
            self._wait_for_tick()
        t_tick = time.perf_counter()
        if self.worker is not None:
            result = self.worker.poll()
            if result is not None:
                self._ingest(result)
        image_age = 0.0
        if self.running and self.scheduler.should_request(self.step_index):
            obs = self.observe()
            image_age = max(0.0, time.time() - obs.receive_time) if self.pace else 0.0
            if image_age <= self.config.safety.max_obs_age_s:
                if self.worker is not None:
                    if self.worker.submit(obs, self.episode):
                        self.scheduler.mark_requested(self.step_index)
                        self.counters["requests"] += 1
                else:
                    self.scheduler.mark_requested(self.step_index)
                    self.counters["requests"] += 1
                    try:
                        chunk, timings = self.policy.infer(obs)
                        late = self._now_step() - self.step_index
                        if late > 0:  # the blocking inference overran: those ticks are gone
                            self._skip_late(late)
                        self._ingest((self.episode, obs, chunk, timings, None))
                    except Exception as exc:
                        self._ingest((self.episode, obs, None, {}, exc))
        measured = self.robot.read_state().positions
        action = self.scheduler.action_for(self.step_index) if self.running else None
        now = self._clock()
        if action is not None:
            self._last_action_time = now
        obs_age = max(image_age, self.state_age() if self.state_age else 0.0)
        stall = now - self._last_action_time
        if self.policy.action_space == "ee_delta":
            decision = self.safety.filter_ee(
                action, self.end_effector.position(), measured, self.end_effector.to_joints, obs_age, stall
            )
        else:
            decision = self.safety.filter(action, measured, obs_age, stall)
        return self._send(decision, t_tick)

    def _send(self, decision: SafetyDecision, t_tick: float) -> StepRecord:
        if not self.send_gate():
            self.counters["dropped_after_stop"] = self.counters.get("dropped_after_stop", 0) + 1
            return StepRecord(self.step_index, decision.targets, True, ["stopped"], 0)
        self.robot.send_joint_targets(decision.targets)
        t_sent = time.perf_counter()
        self.latency.add("tick", t_sent - t_tick)
        if self._last_send is not None:
            self.latency.add("period", t_sent - self._last_send)
        self._last_send = t_sent
        if self._new_chunk and self._chunk_obs_time is not None and not decision.holding:
            self.latency.add("end_to_end", max(0.0, time.time() - self._chunk_obs_time))
            self._new_chunk = False
        record = StepRecord(self.step_index, decision.targets, decision.holding, decision.events,
                            self.scheduler.pending(self.step_index + 1))
        self.counters["ticks"] += 1
        self.step_index += 1
        return record

    def _wait_for_tick(self) -> None:
        target = self._t0 + self.step_index * self.wall_period
        now = time.perf_counter()
        if now > target + self.wall_period:  # missed its deadline by a whole period: skip the missed ticks
            self._skip_late(int((now - target) / self.wall_period))
            target = self._t0 + self.step_index * self.wall_period
        while True:
            remaining = target - time.perf_counter()
            if remaining <= 0:
                return
            time.sleep(min(remaining, 0.002) if remaining < 0.004 else remaining - 0.002)

    # -- control ------------------------------------------------------------------------
    def run(self, steps: int, stop: Callable[[], bool] | None = None) -> list[StepRecord]:
        records = []
        for _ in range(steps):
            if stop is not None and stop():
                break
            records.append(self.tick())
        return records

    def report(self) -> dict:
        period = self.latency.values("period")
        jitter = np.abs(period - self.wall_period) * 1e3 if period.size else np.zeros(0)
        return {
            "latency_ms": self.latency.summary(),
            "period_jitter_ms": {
                "p50": float(np.percentile(jitter, 50)) if jitter.size else 0.0,
                "p99": float(np.percentile(jitter, 99)) if jitter.size else 0.0,
                "max": float(jitter.max()) if jitter.size else 0.0,
            },
            "scheduler": self.scheduler.stats(),
            "safety": self.safety.report(),
            "loop": dict(self.counters),
            "queue_depth": self.scheduler.pending(self.step_index),
        }

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()
            self.worker = None
