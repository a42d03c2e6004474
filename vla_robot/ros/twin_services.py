"""What the arm node adds when its port is the real-time twin (``port:=twin``).

The driver path stays the hardware one (joint states at ``publish_rate_hz`` from the servo
bus, commands written to it); these are the extras only a simulated world can offer, so the
recorder, the scripted teleop, evaluation and fault tests work as with the lock-stepped twin:

* ``~/reset`` (Trigger): next episode (the arm is put back home, the scene re-laid); the
  answer is JSON ``{"seed", "episode", "instruction"}``;
* ``~/evaluate`` (Trigger): the twin's verdict on the current state (success = the answer's
  ``success``; the message is the JSON of ``Twin.evaluate``);
* ``instruction`` (std_msgs/String, latched): each episode's instruction;
* ``~/twin_status`` (std_msgs/String JSON, latched, 2 Hz): ground truth no driver can read --
  per servo torque, hardware-error bits, output %, the TCP, active faults, clock slips;
* parameter ``twin_fault`` (JSON): inject a fault from any process
  (``ros2 param set /arm twin_fault '{"kind": "block_joint", "joint": "shoulder"}'``); the
  reply says what was done or what is wrong (kinds: ``sim.realtime.faults``).
"""

from __future__ import annotations

import json

from rcl_interfaces.msg import SetParametersResult
from std_msgs.msg import String
from std_srvs.srv import Trigger

from vla_robot.ros.qos import LATCHED_QOS

FAULT_PARAMETER = "twin_fault"


class TwinServices:
    def __init__(self, node, host, status_period_s: float = 0.5):
        self.node, self.host = node, host
        node.create_service(Trigger, "~/reset", self._srv_reset)
        node.create_service(Trigger, "~/evaluate", self._srv_evaluate)
        self.status_pub = node.create_publisher(String, "~/twin_status", LATCHED_QOS)
        node.add_on_set_parameters_callback(self._on_parameters)
        node.create_timer(status_period_s, self.publish_status)
        self.publish_instruction()
        self.publish_status()

    def publish_instruction(self) -> None:
        with self.host.lock:
            text = self.host.twin.episode.instruction
        self.node.instruction_pub.publish(String(data=text))

    def publish_status(self) -> None:
        self.status_pub.publish(String(data=json.dumps(self.host.status())))

    def reset(self) -> dict:
        info = self.host.reset()
        robot = self.node.robot
        robot.set_torque(robot.torque_enabled)  # the driver restarts from the present (home) pose
        self.node.rebase_guard()  # a later hold keeps the new episode's pose, not the last one's
        self.publish_instruction()
        return {"seed": self.host.seed, "episode": self.host.episode, "instruction": info["instruction"]}

    def _srv_reset(self, request, response):
        try:
            response.success, response.message = True, json.dumps(self.reset())
        except Exception as exc:  # a failed reset is answered, never fatal
            response.success, response.message = False, f"twin reset failed: {exc}"
        return response

    def _srv_evaluate(self, request, response):
        result = self.host.evaluate()
        response.success, response.message = bool(result["success"]), json.dumps(result, default=str)
        return response

    def _on_parameters(self, parameters) -> SetParametersResult:
        for parameter in parameters:
            if parameter.name == FAULT_PARAMETER and parameter.value:
                try:
                    done = self.host.inject(parameter.value)
                except ValueError as exc:
                    return SetParametersResult(successful=False, reason=str(exc))
                self.node.get_logger().warning(f"twin fault: {done}")
                self.publish_status()
                return SetParametersResult(successful=True, reason=done)
        return SetParametersResult(successful=True)

    def close(self) -> None:
        self.host.close()
