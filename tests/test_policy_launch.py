"""deploy.launch.py, checked without a ROS 2 install: it parses, and every node/parameter it names exists.

The `launch`/`launch_ros` packages are not installable from PyPI, so they are replaced by
recording stand-ins; the launch file's own logic (which nodes, which parameters) runs for real.
"""

import ast
from pathlib import Path

import pytest
from launch_standins import exec_launch_file, install_launch_standins, launch_context

LAUNCH = Path(__file__).resolve().parents[1] / "launch" / "deploy.launch.py"


PKG = LAUNCH.parents[1] / "ros2_ws" / "src" / "vla_robot_bringup"  # its launch/ and config/ are the share dir's


def nodes_of(ns, ctx) -> list:
    """The Node actions (the DDS profile's SetEnvironmentVariable comes first: test_dds_profile)."""
    return [action for action in ns["_nodes"](ctx) if "executable" in action.kwargs]


def load_launch_module(monkeypatch, values: dict):
    install_launch_standins(monkeypatch, lambda p: str(PKG))
    namespace = exec_launch_file(LAUNCH, "deploy_launch")
    return namespace, launch_context(namespace, values)


def test_launch_file_parses_and_declares_its_arguments():
    tree = ast.parse(LAUNCH.read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "generate_launch_description" in functions


@pytest.mark.parametrize("robot", ["widowx", "so100"])
def test_every_node_and_parameter_exists(monkeypatch, robot):
    from vla_robot.ros import arm_node, camera_node, policy_node

    ns, ctx = load_launch_module(monkeypatch, {"robot": robot, "policy": "/tmp/bundle", "cameras": "third_person,wrist",
                                               "camera_devices": "123,456"})
    desc = ns["generate_launch_description"]()
    declared = {a.args[0] for a in desc.args[0] if a.args}
    assert declared == set(ns["ARGUMENTS"])
    nodes = nodes_of(ns, ctx)
    params_of = {"arm_node": arm_node.PARAMS, "camera_node": camera_node.PARAMS, "policy_node": policy_node.PARAMS}
    executables = [n.kwargs["executable"] for n in nodes]
    assert executables == ["arm_node", "camera_node", "camera_node", "policy_node"]
    for node in nodes:
        exe = node.kwargs["executable"]
        for params in node.kwargs["parameters"]:
            unknown = set(params) - set(params_of[exe])
            assert not unknown, f"{exe}: unknown parameters {unknown}"
            for key, value in params.items():  # types must match the declared defaults (rclpy enforces it)
                assert isinstance(value, type(params_of[exe][key])), (exe, key, value)
    policy = nodes[-1].kwargs["parameters"][0]
    assert policy["robot"] == {"widowx": "widowx250", "so100": "so100"}[robot]
    assert nodes[1].kwargs["parameters"][0]["device"] == "123"
    # the hardware defaults an operator gets without asking: the bundle's rate, a quarter of the joint
    # speed limits, no autostart, a latched command watchdog on the arm
    assert policy["control_hz"] == 0.0 and policy["control_hz_override"] is False
    assert policy["velocity_scale"] == 0.25 and policy["autostart"] is False
    arm = nodes[0].kwargs["parameters"][0]
    assert arm["cmd_timeout_latch"] is True and arm["estop_topic"] == policy["estop_topic"] == "/estop"


def test_velocity_scale_and_rate_override_are_explicit(monkeypatch):
    ns, ctx = load_launch_module(monkeypatch, {"robot": "widowx", "policy": "/b", "velocity_scale": "0.6",
                                               "control_hz": "15", "control_hz_override": "true", "execute_steps": "4"})
    policy = nodes_of(ns, ctx)[-1].kwargs["parameters"][0]
    assert policy["velocity_scale"] == 0.6 and policy["control_hz"] == 15.0 and policy["control_hz_override"] is True
    assert policy["execute_steps"] == 4
    ns, ctx = load_launch_module(monkeypatch, {"robot": "sim", "policy": "/b"})
    assert nodes_of(ns, ctx)[-1].kwargs["parameters"][0]["velocity_scale"] == 1.0  # the twin runs at full speed


def test_the_policy_node_refuses_a_rate_the_bundle_was_not_trained_at():
    from vla_robot.policy.runtime_args import resolve_control_rate

    assert resolve_control_rate(30.0, None, False) == 30.0  # unset: the bundle's rate
    assert resolve_control_rate(30.0, 30.0, False) == 30.0
    with pytest.raises(ValueError, match="trained at 30 Hz.*control_hz_override:=true"):
        resolve_control_rate(30.0, 10.0, False, where="control_hz")
    assert resolve_control_rate(30.0, 10.0, True) == 10.0  # overridden explicitly
    with pytest.raises(ValueError, match="does not record its control rate"):
        resolve_control_rate(None, None, False, where="control_hz")


def test_sim_runs_the_real_time_twin_nodes_guarded_and_policy_needs_a_bundle(monkeypatch):
    ns, ctx = load_launch_module(monkeypatch, {"robot": "sim", "policy": "/tmp/bundle", "twin_name": "lab3",
                                               "size": "64x64"})
    nodes = nodes_of(ns, ctx)
    assert [n.kwargs["executable"] for n in nodes] == ["arm_node", "camera_node", "policy_node"]
    arm = {k: v for item in nodes[0].kwargs["parameters"] if isinstance(item, dict) for k, v in item.items()}
    assert arm["port"].startswith("twin://widowx250?name=lab3") and arm["cmd_timeout_latch"] is True
    camera = [item for item in nodes[1].kwargs["parameters"] if isinstance(item, dict)][0]
    assert camera["device"] == arm["port"] and (camera["width"], camera["height"]) == (64, 64)
    ns, ctx = load_launch_module(monkeypatch, {"robot": "widowx", "policy": ""})
    with pytest.raises(RuntimeError, match="policy:=PATH"):
        nodes_of(ns, ctx)
