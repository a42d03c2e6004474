"""The sim deployment stack in one process: twin arm node + twin camera nodes + policy node over DDS.

``vla-robot deploy --robot sim`` and ``vla-robot eval --through-ros`` both build it, so
the embedded default exercises exactly the nodes and topics a robot PC runs with
``ros2 launch vla_robot_bringup deploy.launch.py``.
"""

from __future__ import annotations

from vla_robot.policy.config import RuntimeConfig


def policy_params(runtime: RuntimeConfig, robot: str, rate_factor: float) -> dict:
    return {
        "robot": robot, "control_hz": runtime.control_hz, "rate_factor": rate_factor,
        "asynchronous": runtime.asynchronous, "device": runtime.device, "dtype": runtime.dtype,
        "cuda_graph": runtime.cuda_graph, "vlm_compile": runtime.vlm_compile, "prompt_bucket": runtime.prompt_bucket,
        "merge": runtime.chunk.merge, "decay": runtime.chunk.decay,
        "request_threshold": runtime.chunk.request_threshold, "execute_steps": runtime.chunk.execute_steps or 0,
        "max_obs_age": runtime.safety.max_obs_age_s, "max_stall": runtime.safety.max_inference_stall_s,
        "velocity_scale": runtime.safety.velocity_scale,
    }




class SimPolicyStack:
    """Build (not start) the composed nodes around ``twin``; ``start`` spins them, ``shutdown`` ends them.

    ``one_core`` pins the stack's threads to one CPU, as the collection stack does
    (`executor.pin_to_one_core`): through-ROS expert replay, 3 episodes, took 110 s of CPU
    unpinned, with the twin's clock sometimes starved into a timeout, and 4 s pinned.
    """

    def __init__(self, twin, policy, runtime: RuntimeConfig, rate_factor: float = 1.0, first_seed: int = 0,
                 autostart: bool = False, one_core: bool = True) -> None:
        from sim import TwinCamera, TwinRobot
        from vla_robot.ros.arm_node import ArmNode
        from vla_robot.ros.camera_node import CameraNode
        from vla_robot.ros.executor import ComposedProcess, OneCorePin
        from vla_robot.ros.policy_node import PolicyNode

        self.twin = twin
        self._pin = OneCorePin(one_core)
        try:
            self.composition = ComposedProcess()
        except Exception:
            self._pin.release()
            raise
        ctx = self.composition.context
        try:
            self.arm = self.composition.add(ArmNode(
                {"robot": "sim", "control_rate_hz": runtime.control_hz, "rate_factor": rate_factor,
                 "seed": first_seed - 1, "task": twin.config.task, "sim_robot": twin.spec.name},
                robot=TwinRobot(twin), twin=twin, context=ctx))
            self.cameras = []
            for name in twin.camera_names:
                cam = self.composition.add(CameraNode({"source": "twin", "camera_name": name},
                                                      camera=TwinCamera(twin, name), name=f"camera_{name}",
                                                      context=ctx))
                self.arm.step_listeners.append(cam.on_twin_step)
                self.cameras.append(cam)
            params = policy_params(runtime, twin.spec.name, rate_factor)
            params["autostart"] = autostart
            self.policy_node = self.composition.add(PolicyNode(params, policy=policy, context=ctx))
        except Exception:
            self.shutdown()
            raise

    def start(self) -> None:
        self.composition.start()

    def shutdown(self) -> None:
        self.composition.shutdown()  # the arm node closes the twin from its clock thread
        self._pin.release()  # the caller's thread gets its CPUs back
