"""``twin_node``: the twin's arm and cameras (and optionally its scripted expert) in one process.

Launched by twin.launch.py / collect.launch.py robot:=sim. Parameters are read by a small
"twin" node and the stack is composed like ``vla-robot collect`` does, without a recorder
(run the recorder node beside it).
"""

from __future__ import annotations

import signal
import threading

import rclpy

from vla_robot.ros.params import declare

PARAMS = {
    "robot": "widowx250",  # widowx250 | so100
    "task": "grinning_face",
    "cameras": "third_person,wrist",
    "width": 128,
    "height": 128,
    "control_rate_hz": 10.0,
    "rate_factor": 1.0,
    "seed": 0,
    "scripted": False,  # the scripted expert drives the arm at once
}


def read_params(args=None) -> dict:
    rclpy.init(args=args)
    node = rclpy.create_node("twin")
    try:
        return vars(declare(node, PARAMS))
    finally:
        node.destroy_node()
        rclpy.shutdown()


def main(args=None) -> None:
    p = read_params(args)  # the operator's domain: a standalone executable never picks one
    from vla_robot.ros.sim_stack import SimStack, SimStackConfig

    config = SimStackConfig(store="", robot=p["robot"], task=p["task"],
                            cameras=tuple(c for c in p["cameras"].split(",") if c), width=p["width"],
                            height=p["height"], control_rate_hz=p["control_rate_hz"], rate_factor=p["rate_factor"],
                            seed=p["seed"], record=False, teleop_enabled=p["scripted"],
                            private_dds=False)
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SimStack(config):
        stop.wait()
