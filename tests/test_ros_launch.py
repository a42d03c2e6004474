"""Launch files and the ament package, checked without a ROS 2 install.

`launch`/`launch_ros` are not on PyPI, so they are replaced by recording stand-ins and each
launch file's own logic runs for real: every executable it starts must be an entry point
of vla_robot_bringup, every parameter it or a YAML sets must be declared by that node with
the same type (rclpy refuses a mismatch). Then colcon really builds the package.
"""

import ast
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from launch_standins import SetEnvironmentVariable, exec_launch_file, install_launch_standins, launch_context

ROOT = Path(__file__).resolve().parents[1]
LAUNCH = ROOT / "launch"
PKG = ROOT / "ros2_ws" / "src" / "vla_robot_bringup"


def entry_points() -> dict[str, str]:
    tree = ast.parse((PKG / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    return dict(tuple(part.strip() for part in e.value.split("=")) for e in value.elts)
    raise AssertionError("setup.py has no console_scripts")


def node_params() -> dict[str, dict]:
    import importlib

    out = {}
    for exe, target in entry_points().items():
        module = importlib.import_module(target.split(":")[0])
        out[exe] = module.PARAMS
    return out


def run_launch(monkeypatch, name: str, values: dict):
    install_launch_standins(monkeypatch, lambda p: str(PKG))
    ns = exec_launch_file(LAUNCH / f"{name}.launch.py", name)
    desc = ns["generate_launch_description"]()
    declared = {a.args[0] for a in desc.args[0] if a.args}
    assert declared == set(ns["ARGUMENTS"]), f"{name}: declared arguments differ from ARGUMENTS"
    context = launch_context(ns, values)
    opaque = [a for a in desc.args[0] if not a.args]
    nodes = []
    for action in opaque:
        nodes += action.kwargs["function"](context)
    return [n for n in nodes if not isinstance(n, SetEnvironmentVariable)]  # the DDS profile: test_dds_profile


def check_value(exe, key, value, params):
    assert key in params[exe], f"{exe}: parameter {key!r} is not declared (declared: {sorted(params[exe])})"
    default = params[exe][key]
    ok = isinstance(value, bool) if isinstance(default, bool) else (
        isinstance(value, type(default)) and not isinstance(value, bool))
    assert ok, f"{exe}: parameter {key!r}={value!r} has type {type(value).__name__}, declared {type(default).__name__}"


def check_nodes(nodes, params):
    exes = entry_points()
    for node in nodes:
        exe = node.kwargs["executable"]
        assert node.kwargs["package"] == "vla_robot_bringup"
        assert exe in exes, f"executable {exe!r} is not an entry point of vla_robot_bringup ({sorted(exes)})"
        for item in node.kwargs.get("parameters", []):
            if isinstance(item, str):  # a YAML file: it must exist and set this node's parameters only
                assert Path(item).is_file(), item
                data = yaml.safe_load(Path(item).read_text())
                entry = data.get(node.kwargs["name"], {}).get("ros__parameters", {})
                for key, value in entry.items():
                    check_value(exe, key, value, params)
            else:
                for key, value in item.items():
                    check_value(exe, key, value, params)


def test_every_launch_file_parses_and_is_installed():
    files = sorted(p.name for p in LAUNCH.glob("*.launch.py"))
    assert {"collect.launch.py", "teleop.launch.py", "twin.launch.py"} <= set(files)
    for name in files:
        tree = ast.parse((LAUNCH / name).read_text())
        assert "generate_launch_description" in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert sorted(p.name for p in (PKG / "launch").glob("*.launch.py")) == files  # the package installs them all


@pytest.mark.parametrize("values", [
    {"robot": "widowx", "cameras": "front,wrist", "camera_devices": "111,222"},
    {"robot": "so100", "teleop": "leader", "camera_source": "opencv", "cameras": "front",
     "calibration_path": "~/so100.json", "leader_calibration": "~/leader.json"},
    {"robot": "sim"},
    {"robot": "widowx", "teleop": "none", "port": "/dev/ttyUSB0", "console": "false"},
    {"robot": "so100", "console_host": "0.0.0.0", "console_port": "9000", "console_token": "x" * 20},
])
def test_collect_launch_nodes_and_parameters_exist(monkeypatch, values):
    params = node_params()
    nodes = run_launch(monkeypatch, "collect", values)
    check_nodes(nodes, params)
    exes = [n.kwargs["executable"] for n in nodes]
    if values.get("console") == "false":
        assert "console_node" not in exes and exes[-1] == "recorder_node"
    else:  # the browser console reads the recorder's store and shows its cameras
        assert exes[-2:] == ["recorder_node", "console_node"]
        recorder, console = (n.kwargs["parameters"][-1] for n in nodes[-2:])
        assert (console["store"], console["cameras"], console["robot"]) == \
            (recorder["store"], recorder["cameras"], recorder["robot"])
        assert console["host"] == values.get("console_host", "127.0.0.1")
        assert console.get("token", "") == values.get("console_token", "")
        exes = exes[:-1]
    assert exes[-1] == "recorder_node"
    if values["robot"] == "sim":  # the real-time twin: arm on the twin's bus, free-running cameras, scripted teleop
        assert exes == ["arm_node", "camera_node", "camera_node", "teleop_node", "recorder_node"]
        arm, teleop = nodes[0].kwargs["parameters"][-1], nodes[3].kwargs["parameters"][-1]
        cameras = [n.kwargs["parameters"][-1] for n in nodes[1:3]]
        assert arm["port"].startswith("twin://widowx250?name=collect") and arm["robot"] == "widowx"
        assert {c["device"] for c in cameras} == {arm["port"]} and teleop["twin"] == arm["port"]
        assert [c["camera_name"] for c in cameras] == ["third_person", "wrist"] and teleop["enabled"] is False
        assert all(c["source"] == "twin" for c in cameras)
    else:
        assert exes[0] == "arm_node" and exes.count("camera_node") == len(values.get("cameras", "front,wrist").split(","))
    if values.get("teleop") == "leader":
        leader = [n for n in nodes if n.kwargs["name"] == "leader"][0]
        assert ("joint_states", "leader/joint_states") in leader.kwargs["remappings"]


@pytest.mark.parametrize("name, values", [
    ("teleop", {"mode": "joy"}), ("teleop", {"mode": "leader", "robot": "so100"}), ("twin", {"size": "640x480"}),
    ("twin", {"robot": "so100", "scripted": "true", "depth": "true", "name": "lab2"}),
    ("deploy", {"robot": "widowx", "policy": "/tmp/bundle"}), ("deploy", {"robot": "sim", "policy": "/tmp/bundle"}),
])
def test_other_launch_files_nodes_and_parameters_exist(monkeypatch, name, values):
    nodes = [n for n in run_launch(monkeypatch, name, values) if "executable" in n.kwargs]
    assert nodes
    check_nodes(nodes, node_params())


def test_twin_launch_gives_every_node_the_same_twin_address(monkeypatch):
    nodes = run_launch(monkeypatch, "twin", {"robot": "so100", "scripted": "true", "name": "lab2", "seed": "7"})
    params = [n.kwargs["parameters"][-1] for n in nodes]
    assert [n.kwargs["executable"] for n in nodes] == ["arm_node", "camera_node", "camera_node", "teleop_node"]
    address = params[0]["port"]
    assert address.startswith("twin://so100?name=lab2&seed=7") and params[0]["robot"] == "so100"
    assert [p["device"] for p in params[1:3]] == [address, address] and params[3]["twin"] == address
    assert params[3]["robot"] == "so100" and params[3]["enabled"] is True
    from sim.realtime import parse_twin_url

    parsed = parse_twin_url(address)
    assert (parsed.arm, parsed.name, parsed.seed, parsed.driver_kind) == ("so100", "lab2", 7, "so100")
    assert [n.kwargs["executable"] for n in run_launch(monkeypatch, "twin", {})] == ["arm_node", "camera_node",
                                                                                    "camera_node"]


def test_bad_launch_argument_is_a_clear_error(monkeypatch):
    with pytest.raises(RuntimeError, match="robot:=ur5 unknown"):
        run_launch(monkeypatch, "collect", {"robot": "ur5"})


def test_yaml_configs_only_set_declared_parameters():
    params = node_params()
    node_exe = {"arm": "arm_node", "leader": "arm_node", "recorder": "recorder_node", "teleop": "teleop_node"}
    for path in (PKG / "config").glob("*.yaml"):
        for node, entry in yaml.safe_load(path.read_text()).items():
            exe = node_exe.get(node, "camera_node" if node.startswith("camera_") else None)
            assert exe, f"{path.name}: unknown node {node!r}"
            for key, value in entry["ros__parameters"].items():
                check_value(exe, key, value, params)


def test_package_xml_is_valid_for_ament():
    from catkin_pkg.package import parse_package

    pkg = parse_package(str(PKG / "package.xml"))
    assert pkg.name == "vla_robot_bringup" and pkg.get_build_type() == "ament_python"
    assert pkg.maintainers[0].email == "dev@example.com"
    cfg = (PKG / "setup.cfg").read_text()
    assert "script_dir=$base/lib/vla_robot_bringup" in cfg and "install_scripts=$base/lib/vla_robot_bringup" in cfg


def test_colcon_build_installs_executables_launch_files_and_ament_index(colcon_install):
    """The session's colcon build of ros2_ws (conftest ``colcon_install``; process tests start its executables)."""
    prefix = colcon_install.prefix
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "vla_robot_bringup").is_file()
    share = colcon_install.share
    assert sorted(p.name for p in (share / "launch").iterdir()) == sorted(p.name for p in LAUNCH.glob("*.launch.py"))
    assert {p.name for p in (share / "config").iterdir()} >= {"collect_widowx.yaml", "collect_so100.yaml",
                                                              "collect_sim.yaml", "twin.yaml", "teleop.yaml"}
    for exe in entry_points():
        script = colcon_install.executable(exe)
        assert script.is_file() and os.access(script, os.X_OK), exe
    probe = subprocess.run([str(colcon_install.executable("arm_node")), "--ros-args", "-p", "robot:=nope"],
                           capture_output=True, text=True, timeout=60, env=colcon_install.environment())
    assert probe.returncode != 0 and "unknown robot kind 'nope'" in probe.stderr  # the installed script runs our node
