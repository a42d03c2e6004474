"""The collection stack on the twin, composed in one process: arm (twin clock), one camera
node per twin camera, scripted-expert teleop and the recorder, all talking over real DDS.

Used by ``vla-robot collect --robot sim`` (fast, lock-stepped data generation), the demo,
the end-to-end tests and the collection benchmark. ``twin.launch.py`` and
``collect.launch.py robot:=sim`` run the real-time twin instead, each node its own process.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from rclpy.node import Node
from std_msgs.msg import Bool
from std_srvs.srv import SetBool, Trigger

from vla_robot.ros.executor import ComposedProcess, OneCorePin, await_future
from vla_robot.ros.qos import LATCHED_QOS


@dataclass(frozen=True)
class SimStackConfig:
    store: str
    robot: str = "widowx250"  # twin arm: widowx250 | so100
    task: str = "grinning_face"
    n_cards: int = 4  # emoji cards on the table
    split: str = "train"  # emoji split the cards are drawn from (sim.emoji)
    layout_seed: int | None = None  # fixed card/cube layout for every episode (None: random)
    cameras: tuple[str, ...] = ("third_person", "wrist")
    width: int = 128
    height: int = 128
    control_rate_hz: float = 10.0
    rate_factor: float = 2.0  # sim seconds per wall second
    seed: int = 0
    encoding: str = "jpeg"
    quality: int = 90
    max_steps: int = 150  # an episode is cut (and saved as a failure) after this many steps
    preview_path: str = ""
    record: bool = True  # False: the twin, cameras and teleop only
    teleop_enabled: bool = False  # the scripted expert drives at once (otherwise per episode)
    one_core: bool = True  # pin the composed stack's threads to one CPU (see executor.pin_to_one_core)
    console_port: int | None = None  # serve the recording console in a browser (0: any free port)
    console_host: str = "127.0.0.1"  # another interface needs console_token
    console_token: str = ""


class SimStack:
    # How long the twin waits for the scripted teleop's answer to a state. Its answers take a few ms;
    # the wait ends only when the teleop is switched off at the end of an episode, so a long one
    # stalls every episode (2 s cost ~1.5 s per episode). Recording stays exact however late an
    # answer is: the stored action is the command the arm executed (arm/applied_command).
    LOCKSTEP_TIMEOUT_S = 0.5

    def __init__(self, config: SimStackConfig, threads: int = 6):
        from sim import ScriptedExpert, Twin, TwinCamera, TwinConfig, TwinRobot

        from vla_robot.ros.arm_node import ArmNode
        from vla_robot.ros.camera_node import CameraNode
        from vla_robot.ros.teleop_node import TeleopNode

        c = config
        self.config = c
        self._pin = OneCorePin(c.one_core)
        self.twin = Twin(TwinConfig(robot=c.robot, task=c.task, n_cards=c.n_cards, split=c.split, layout_seed=c.layout_seed, cameras=c.cameras, image_size=(c.width, c.height),
                                    control_rate_hz=c.control_rate_hz, seed=c.seed, max_steps=max(c.max_steps, 1)))
        self.twin_lock = threading.RLock()
        self.max_rerecords = 5  # episodes re-recorded after an empty save, per run, before giving up
        self.rerecorded = 0
        self.expert = ScriptedExpert(self.twin)
        self.process = ComposedProcess(threads=threads)
        ctx = self.process.context
        self.arm = self.process.add(ArmNode({"robot": "sim", "control_rate_hz": c.control_rate_hz,
                                             "rate_factor": c.rate_factor, "seed": c.seed, "sim_robot": c.robot,
                                             "sensor_qos": "reliable", "lockstep": True,
                                             "lockstep_timeout_s": self.LOCKSTEP_TIMEOUT_S},
                                            robot=TwinRobot(self.twin), twin=self.twin, twin_lock=self.twin_lock, context=ctx))
        self.cameras = []
        for name in c.cameras:
            node = self.process.add(CameraNode({"source": "twin", "camera_name": name, "width": c.width,
                                                "height": c.height, "fps": c.control_rate_hz, "sensor_qos": "reliable"},
                                               camera=TwinCamera(self.twin, name), context=ctx))
            self.arm.step_listeners.append(node.on_twin_step)
            self.cameras.append(node)
        self.teleop = self.process.add(TeleopNode({"mode": "scripted", "robot": c.robot, "enabled": c.teleop_enabled,
                                                   "sensor_qos": "reliable"},
                                                  expert=self.expert, twin_lock=self.twin_lock, context=ctx))
        self.recorder = None
        if c.record:
            from vla_robot.ros.recorder_node import RecorderNode

            self.recorder = self.process.add(RecorderNode({
                "store": c.store, "sensor_qos": "reliable", "robot": c.robot, "cameras": ",".join(c.cameras), "width": c.width,
                "height": c.height, "control_rate_hz": c.control_rate_hz, "encoding": c.encoding,
                "quality": c.quality, "auto_reset_service": "/arm/reset", "preview_path": c.preview_path,
                # record what the arm executed, stamped with the state it answered: the stored action
                # never depends on when the teleop's answer arrived
                "action_source": "arm",
                # a step's action is settled once the next step's is out: two ticks, one of which may
                # stall on the teleop; waiting less would close steps early and count them as gaps
                "max_wait_s": self.LOCKSTEP_TIMEOUT_S + 2.0 / (c.control_rate_hz * c.rate_factor) + 1.0,
                "scene": json.dumps(self.twin.config.scene()),  # the bundle trained on this store deploys here
            }, context=ctx))
        self.console = None
        if c.record and c.console_port is not None:
            from vla_robot.ros.console_node import ConsoleNode

            self.console = self.process.add(ConsoleNode({
                "store": c.store, "robot": c.robot, "cameras": ",".join(c.cameras), "action_source": "arm",
                "host": c.console_host, "port": c.console_port, "token": c.console_token}, context=ctx))
        self.operator = self.process.add(OperatorClient(context=ctx))
        self.process.start()

    def record_episodes(self, n: int, progress=None, timeout_s: float = 120.0) -> list[dict]:
        """The sim operator: per episode start, enable the expert, wait for it, save with the twin's verdict.

        Everything but the start and save goes through the recorder's and arm's ROS services
        (those two name their stamps, see below); the recorder resets the twin after each save.
        """
        op = self.operator
        results = []
        op.wait_for_services(["/recorder/start", "/recorder/save", "/arm/evaluate", "/teleop/enable", "/arm/reset"],
                             timeout_s=30.0)
        episode, retries = 0, 0
        while episode < n:
            op.wait_instruction_ready(self.recorder, self.twin)
            with self.twin_lock:
                self.expert.reset()  # plan for this episode before "done" is read
                first = self.arm.stamp_of(0.0)  # this episode's clock starts here
            previous = self.twin.episode
            self._wait_for_recorder(first, ("state",), f"episode {episode}: the new episode's first state")
            # Start and enable at one twin step, in process. Through the services, with the
            # callbacks slowed as on a starved CPU, an episode began with 34-195 idle steps at home
            # (test_collect_replay): the recorder's grid started at the first sample to reach it (an
            # old one while it lags), and the enable request waited up to 1 s behind the teleop's
            # state callbacks while the twin stepped on. A demonstration that idles at its start
            # teaches the policy to idle there.
            with self.twin_lock:
                begin = self.arm.stamp_of(self.twin.sim_time)
                try:
                    self.recorder.start_episode(t0=begin)
                except Exception as exc:  # noqa: BLE001
                    raise RuntimeError(f"episode {episode}: start refused: {exc}") from exc
                self.teleop.set_enabled(True)
                self.arm.pause_lockstep(False)
            steps0 = self.twin.steps
            deadline = time.monotonic() + timeout_s
            while not self.expert.done and self.twin.steps - steps0 < self.config.max_steps:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"episode {episode}: the expert did not finish within {timeout_s}s")
                time.sleep(0.02)
            time.sleep(2.0 / (self.config.control_rate_hz * self.config.rate_factor))  # the last action lands
            with self.twin_lock:
                self.teleop.set_enabled(False)
                self.arm.pause_lockstep(True)  # no tick waits for the teleop it just switched off
            verdict = json.loads(op.call(Trigger, "/arm/evaluate").message)
            with self.twin_lock:
                last = self.arm.stamp_of(self.twin.sim_time)  # the state the verdict was taken on
            self._wait_for_recorder(last, None, f"episode {episode}: its last step")
            try:
                # The episode ends on the state the verdict was taken on. A save through
                # /recorder/save would end it at the newest state the recorder had taken in when
                # the request got its turn, and the twin keeps stepping meanwhile: with the
                # recorder's callbacks slowed as on a starved CPU, 36 idle steps were appended to
                # a 57-step episode (test_collect_replay). Sim stamps have no host-clock press time.
                message = self.recorder.save_episode(bool(verdict["success"]), end=last)
            except Exception as exc:  # noqa: BLE001 - answered like the service would
                # A starved CPU can leave an episode with no aligned frame; the recorder has already
                # discarded it (nothing saved is touched), so re-record it on a fresh twin episode.
                retries += 1
                if retries > self.max_rerecords or "no aligned frames" not in str(exc):
                    raise RuntimeError(f"episode {episode}: save failed: {exc}") from exc
                self.rerecorded += 1
                op.call(Trigger, "/arm/reset")
                self._wait_for_new_twin_episode(previous)
                continue
            self._wait_for_new_twin_episode(previous)  # the recorder's auto-reset reaches the twin
            results.append({"episode": episode, "success": bool(verdict["success"]),
                            "instruction": verdict["instruction"], "message": message})
            if progress is not None:
                progress(results[-1])
            episode += 1
        return results

    def _wait_for_recorder(self, stamp: float, streams, what: str, timeout_s: float = 60.0) -> None:
        """Wait until the recorder has taken in every stream up to ``stamp`` (its callbacks run late
        on a starved CPU; see RecorderNode.received_through)."""
        deadline = time.monotonic() + timeout_s
        while not self.recorder.received_through(stamp, streams):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what}: the recorder has not received the stream(s) "
                                   f"{list(streams or ['state', 'action', 'images'])} up to sim stamp {stamp:.3f} "
                                   f"within {timeout_s:.0f}s (newest: {self.recorder.seen})")
            time.sleep(0.002)

    def drive_while_recording(self, stop: threading.Event, poll_s: float = 0.05) -> None:
        """The sim operator's hands when a person drives episodes from the console (``--manual``).

        The scripted expert drives the twin while an episode records and rests otherwise, as a
        person on the teleop would, so every episode shows the task from its start. Returns
        when ``stop`` is set.
        """
        op = self.operator
        op.wait_for_services(["/teleop/enable"], timeout_s=30.0)
        driving = False
        while not stop.wait(poll_s):
            rec = self.recorder.recorder
            recording = rec is not None and rec.recording
            if recording and not driving:
                with self.twin_lock:
                    self.expert.reset()
                op.call(SetBool, "/teleop/enable", data=True)
            elif driving and not recording:
                op.call(SetBool, "/teleop/enable", data=False)
            driving = recording

    def _wait_for_new_twin_episode(self, previous, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while self.twin.episode is previous and time.monotonic() < deadline:
            time.sleep(0.01)

    def shutdown(self) -> None:
        self.process.shutdown()  # the arm node's clock thread closes the twin's renderers
        self._pin.release()  # the caller's thread gets its CPUs back

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


class OperatorClient(Node):
    """Calls episode services over DDS like an operator's tool would."""

    SERVICES = {"/recorder/start": Trigger, "/recorder/save": SetBool, "/arm/evaluate": Trigger, "/arm/reset": Trigger,
                "/teleop/enable": SetBool}

    def __init__(self, context=None):
        super().__init__("sim_operator", context=context)
        self.instruction = ""
        from std_msgs.msg import String

        self.create_subscription(String, "instruction", self._on_instruction, LATCHED_QOS)
        self._service_clients = {name: self.create_client(srv, name) for name, srv in self.SERVICES.items()}

    def _on_instruction(self, msg) -> None:
        self.instruction = msg.data

    def _client(self, name):
        if name not in self._service_clients:
            raise KeyError(f"the sim operator has no client for {name}; add it to OperatorClient.SERVICES")
        return self._service_clients[name]

    def wait_for_services(self, names, timeout_s: float) -> None:
        for name in names:
            if not self._client(name).wait_for_service(timeout_sec=timeout_s):
                raise TimeoutError(f"service {name} not available after {timeout_s}s")

    def wait_instruction_ready(self, recorder, twin, timeout_s: float = 10.0) -> None:
        """After an auto-reset the twin's new instruction must reach the recorder before start."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if recorder._pending_instruction == twin.episode.instruction:
                return
            time.sleep(0.02)
        raise TimeoutError(f"the recorder did not receive the instruction {twin.episode.instruction!r}")

    def call(self, srv_type, name, timeout_s: float = 30.0, **fields):
        return await_future(self._client(name).call_async(srv_type.Request(**fields)), timeout_s, f"service {name}")
