"""The sim deployment stack in one process: twin arm node + twin camera nodes + policy node over DDS.

``vla-robot deploy --robot sim`` and ``vla-robot eval --through-ros`` both build it, so
the embedded default exercises exactly the nodes and topics a robot PC runs with
``ros2 launch vla_robot_bringup deploy.launch.py``.
"""

from __future__ import annotations

import logging
import threading

from vla_robot.policy.config import RuntimeConfig

log = logging.getLogger(__name__)


class Composition:
    """Nodes on the default rclpy context, spun by a multi-threaded executor in a background thread.

    The nodes take no ``context`` argument, so they live on the default context; it is
    initialised here if nobody else did, and shut down again only by its owner. Nodes are
    closed before the executor stops (the sim arm node stops its twin clock thread, which
    also closes the twin's renderers in the thread that owns their GL context).
    """

    def __init__(self, threads: int = 4) -> None:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor

        from vla_robot.ros.executor import local_dds_env

        local_dds_env()
        self._owns_context = not rclpy.ok()
        if self._owns_context:
            rclpy.init()
        self.executor = MultiThreadedExecutor(num_threads=threads)
        self.nodes: list = []
        self.error: Exception | None = None
        self._thread: threading.Thread | None = None

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def start(self) -> None:
        self._thread = threading.Thread(target=self._spin, name="ros-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        import rclpy

        try:
            self.executor.spin()
        except Exception as exc:  # a callback failed: say so; waits on the stack then time out with a reason
            if rclpy.ok():
                log.exception("ROS executor stopped: %s", exc)
                self.error = exc

    def shutdown(self) -> None:
        import rclpy

        for node in reversed(self.nodes):
            close = getattr(node, "close", None)
            if close:
                close()
        self.executor.shutdown(timeout_sec=2.0)
        if self._thread:
            self._thread.join(timeout=5.0)
        for node in self.nodes:
            node.destroy_node()
        if self._owns_context and rclpy.ok():
            rclpy.shutdown()


def policy_params(runtime: RuntimeConfig, robot: str, rate_factor: float) -> dict:
    return {
        "robot": robot, "control_hz": runtime.control_hz, "rate_factor": rate_factor,
        "asynchronous": runtime.asynchronous, "device": runtime.device, "dtype": runtime.dtype,
        "cuda_graph": runtime.cuda_graph, "vlm_compile": runtime.vlm_compile, "prompt_bucket": runtime.prompt_bucket,
        "merge": runtime.chunk.merge, "decay": runtime.chunk.decay,
        "request_threshold": runtime.chunk.request_threshold,
        # wall-clock thresholds shrink with the speed-up so a stall means the same number of control periods
        "max_obs_age": runtime.safety.max_obs_age_s, "max_stall": runtime.safety.max_inference_stall_s,
        "velocity_scale": runtime.safety.velocity_scale,
    }




class SimPolicyStack:
    """Build (not start) the composed nodes around ``twin``; ``start`` spins them, ``shutdown`` ends them."""

    def __init__(self, twin, policy, runtime: RuntimeConfig, rate_factor: float = 1.0, first_seed: int = 0,
                 autostart: bool = False) -> None:
        from sim import TwinCamera, TwinRobot
        from vla_robot.ros.arm_node import ArmNode
        from vla_robot.ros.camera_node import CameraNode
        from vla_robot.ros.policy_node import PolicyNode

        self.twin = twin
        self.composition = Composition()
        try:
            self.arm = self.composition.add(ArmNode(
                {"robot": "sim", "control_rate_hz": runtime.control_hz, "rate_factor": rate_factor,
                 "seed": first_seed - 1, "task": twin.config.task}, robot=TwinRobot(twin), twin=twin))
            self.cameras = []
            for name in twin.camera_names:
                cam = self.composition.add(CameraNode({"source": "twin", "camera_name": name},
                                                      camera=TwinCamera(twin, name), name=f"camera_{name}"))
                self.arm.step_listeners.append(cam.on_twin_step)
                self.cameras.append(cam)
            params = policy_params(runtime, twin.spec.name, rate_factor)
            params["autostart"] = autostart
            self.policy_node = self.composition.add(PolicyNode(params, policy=policy))
        except Exception:
            self.composition.shutdown()
            raise

    def start(self) -> None:
        self.composition.start()

    def shutdown(self) -> None:
        self.composition.shutdown()  # the arm node closes the twin from its clock thread
