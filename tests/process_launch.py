"""Bring a launch file's nodes up as separate OS processes, the way ``ros2 launch`` does.

``launch``/``launch_ros`` are not on PyPI, so a test cannot run ``ros2 launch``. What it can do
is what launch does for a ``launch_ros.actions.Node``: this module runs the launch file's own
logic with the recording stand-ins (``launch_standins.py``), follows its ``OpaqueFunction`` s and
``IncludeLaunchDescription`` s, and for every Node action

* writes each dict in ``parameters`` to a YAML file keyed ``/**`` (launch_ros'
  ``_create_params_file_from_dict``) and passes it, like each YAML file named there, as its own
  ``--params-file`` in the listed order (rcl applies them in order: later overrides earlier);
* spawns ``install/lib/vla_robot_bringup/<exe> --ros-args -r __node:=<name> [-r __ns:=<ns>]
  --params-file ... [-r from:=to ...]`` from a real colcon install of ``ros2_ws``;
* stops it like launch does: SIGINT, then SIGTERM, then SIGKILL, each after a grace period.

Every node's stdout and stderr go to ``<workdir>/<name>.log``; ``ProcessLaunch.logs()`` gives
their tails (the conftest fixture attaches them to a failing test's report).

Typical use (fixtures ``colcon_install`` and ``process_launch`` in conftest.py)::

    def test_something(process_launch):
        nodes = process_launch.launch("collect", {"robot": "sim", "store": str(tmp_path / "d.zarr")})
        with RosClient() as ros:
            ros.wait_for_service("/recorder/start", Trigger)
            ...
        process_launch.assert_alive()

Nodes can also be started one by one (``process_launch.start(NodeLaunch(...))``), with
environment variables added or removed (the operator's-domain test removes ``ROS_DOMAIN_ID``).
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import yaml
from launch_standins import SetEnvironmentVariable, exec_launch_file, launch_context, standin_modules

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "vla_robot_bringup"
SRC = ROOT / "ros2_ws" / "src"


@dataclass(frozen=True)
class ColconInstall:
    """A colcon install of ros2_ws (the workspace ``source install/setup.bash`` would set up)."""

    base: Path  # the install base (install/)

    @property
    def prefix(self) -> Path:
        return self.base / PACKAGE

    @property
    def share(self) -> Path:
        return self.prefix / "share" / PACKAGE

    @property
    def site_packages(self) -> Path:
        return next((self.prefix / "lib").glob("python3*/site-packages"))

    def executable(self, name: str) -> Path:
        return self.prefix / "lib" / PACKAGE / name

    def environment(self) -> dict[str, str]:
        """What ``source install/setup.bash`` adds: the package's Python path and the ament prefix."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(self.site_packages), env.get("PYTHONPATH", "")) if p)
        env["AMENT_PREFIX_PATH"] = os.pathsep.join(p for p in (str(self.prefix), env.get("AMENT_PREFIX_PATH", "")) if p)
        env["PYTHONUNBUFFERED"] = "1"  # logs reach the file as they happen
        return env


def colcon_build(workdir: Path, timeout_s: float = 300.0) -> ColconInstall:
    """``colcon build`` of ros2_ws into ``workdir`` (build/, install/, log/); raises with colcon's output on failure."""
    colcon = Path(sys.executable).with_name("colcon")
    workdir.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [str(colcon), "--log-base", str(workdir / "log"), "build", "--base-paths", str(SRC),
         "--build-base", str(workdir / "build"), "--install-base", str(workdir / "install")],
        capture_output=True, text=True, timeout=timeout_s, cwd=workdir,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
    )
    if result.returncode != 0:
        raise RuntimeError(f"colcon build failed:\n{result.stdout}\n{result.stderr}")
    return ColconInstall(workdir / "install")


@dataclass
class NodeLaunch:
    """One ``launch_ros.actions.Node``: what ``ros2 launch`` would start."""

    executable: str
    name: str
    parameters: list = field(default_factory=list)  # YAML file paths (str) and dicts, in order
    remappings: list = field(default_factory=list)  # (from, to)
    namespace: str = ""
    package: str = PACKAGE
    env: dict = field(default_factory=dict)  # SetEnvironmentVariable actions before it, as launch applies them

    @classmethod
    def from_action(cls, action, env: dict | None = None) -> "NodeLaunch":
        kw = action.kwargs
        return cls(executable=kw["executable"], name=kw.get("name") or kw["executable"],
                   parameters=list(kw.get("parameters") or []), remappings=list(kw.get("remappings") or []),
                   namespace=kw.get("namespace") or "", package=kw.get("package", PACKAGE), env=dict(env or {}))

    def params_files(self, directory: Path) -> list[Path]:
        """Each entry as the file launch_ros passes: YAML paths as they are, dicts written as ``/**`` YAML."""
        out = []
        for item in self.parameters:
            if isinstance(item, dict):  # a file of its own, as launch_ros' NamedTemporaryFile
                handle, name = tempfile.mkstemp(prefix="launch_params_", suffix=".yaml", dir=directory)
                with os.fdopen(handle, "w") as f:
                    yaml.dump({"/**": {"ros__parameters": item}}, f, default_flow_style=False)
                out.append(Path(name))
            else:
                out.append(Path(str(item)))
        return out

    def command(self, install: ColconInstall, directory: Path) -> list[str]:
        ros_args = ["-r", f"__node:={self.name}"]
        if self.namespace:
            ros_args += ["-r", f"__ns:={self.namespace if self.namespace.startswith('/') else '/' + self.namespace}"]
        for path in self.params_files(directory):
            ros_args += ["--params-file", str(path)]
        for source, target in self.remappings:
            ros_args += ["-r", f"{source}:={target}"]
        return [str(install.executable(self.executable)), "--ros-args", *ros_args]


def launch_file_nodes(install: ColconInstall, launch_name: str, arguments: dict | None = None) -> list[NodeLaunch]:
    """The Node actions of ``<launch_name>.launch.py`` (the installed copy) for these launch arguments.

    OpaqueFunctions run against the arguments (defaults from the file's ``ARGUMENTS``);
    included launch files are expanded with their ``launch_arguments``, as launch does.
    """
    path = install.share / "launch" / f"{launch_name}.launch.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not installed; launch files: {sorted(p.name for p in path.parent.iterdir())}")
    with mock.patch.dict(sys.modules, standin_modules(lambda package: str(install.share))):
        return _expand_file(path, {k: str(v) for k, v in (arguments or {}).items()})


def _expand_file(path: Path, arguments: dict, env: dict | None = None) -> list[NodeLaunch]:
    namespace = exec_launch_file(path, path.name.replace(".", "_"))
    unknown = sorted(set(arguments) - set(namespace["ARGUMENTS"]))
    if unknown:
        raise ValueError(f"{path.name}: unknown launch arguments {unknown}; declared {sorted(namespace['ARGUMENTS'])}")
    description = namespace["generate_launch_description"]()
    return _expand(description.args[0], launch_context(namespace, arguments), env if env is not None else {})


def _expand(actions, context: dict, env: dict) -> list[NodeLaunch]:
    """``env``: the SetEnvironmentVariable values so far (launch keeps them in its context for
    every later process, included files too)."""
    out = []
    for action in actions:
        kwargs = action.kwargs
        if isinstance(action, SetEnvironmentVariable):
            name, value = action.variable
            env[name] = value
        elif "function" in kwargs:  # OpaqueFunction
            out += _expand(kwargs["function"](context) or [], context, env)
        elif "executable" in kwargs:  # launch_ros Node
            out.append(NodeLaunch.from_action(action, env))
        elif action.args and hasattr(action.args[0], "args") and action.args[0].args:  # IncludeLaunchDescription
            source = Path(str(action.args[0].args[0]))
            out += _expand_file(source, {k: str(v) for k, v in kwargs.get("launch_arguments", [])}, env)
        # DeclareLaunchArgument: its default is already in the context
    return out


def _die_with_parent() -> None:
    """Children get SIGTERM if the test process dies, so no node outlives a killed pytest."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


@dataclass
class NodeProcess:
    node: NodeLaunch
    process: subprocess.Popen
    log_path: Path
    command: list[str]

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""
        return text[-chars:]


class ProcessLaunch:
    """Starts nodes as processes from a colcon install and stops them like ``ros2 launch``."""

    def __init__(self, install: ColconInstall, workdir: Path, sigint_timeout_s: float = 10.0,
                 sigterm_timeout_s: float = 5.0):
        self.install = install
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sigint_timeout_s = sigint_timeout_s
        self.sigterm_timeout_s = sigterm_timeout_s
        self.processes: list[NodeProcess] = []
        self._lock = threading.Lock()

    def nodes(self, launch_name: str, arguments: dict | None = None) -> list[NodeLaunch]:
        return launch_file_nodes(self.install, launch_name, arguments)

    def launch(self, launch_name: str, arguments: dict | None = None, env: dict | None = None,
               env_remove: tuple[str, ...] = ()) -> list[NodeProcess]:
        """Start every node of a launch file, each in its own process; returns them in launch order."""
        return [self.start(node, env=env, env_remove=env_remove) for node in self.nodes(launch_name, arguments)]

    def start(self, node: NodeLaunch, env: dict | None = None, env_remove: tuple[str, ...] = ()) -> NodeProcess:
        environment = self.install.environment()
        environment.update(node.env)  # the launch file's SetEnvironmentVariable actions
        environment.update(env or {})
        for key in env_remove:
            environment.pop(key, None)
        directory = self.workdir / "params"
        directory.mkdir(exist_ok=True)
        command = node.command(self.install, directory)
        log_path = self.workdir / f"{node.namespace.strip('/').replace('/', '_') + '_' if node.namespace else ''}{node.name}.log"
        with open(log_path, "ab") as log:
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                       cwd=self.workdir, preexec_fn=_die_with_parent)
        running = NodeProcess(node, process, log_path, command)
        with self._lock:
            self.processes.append(running)
        return running

    def process(self, name: str) -> NodeProcess:
        for running in self.processes:
            if running.node.name == name:
                return running
        raise KeyError(f"no node {name!r}; started: {[p.node.name for p in self.processes]}")

    def assert_alive(self) -> None:
        dead = [p for p in self.processes if not p.alive]
        if dead:
            raise AssertionError("nodes exited early:\n" + "\n".join(
                f"--- {p.node.name} (exit {p.process.returncode}) ---\n{p.log_tail()}" for p in dead))

    def stop(self, running: NodeProcess, interrupted: bool = False) -> int:
        """SIGINT once (what launch sends on Ctrl-C; skipped when ``interrupted``), then SIGTERM, then
        SIGKILL, each after its grace period; returns the exit code."""
        process = running.process
        steps = ((signal.SIGINT, self.sigint_timeout_s), (signal.SIGTERM, self.sigterm_timeout_s),
                 (signal.SIGKILL, 5.0))
        for sig, timeout in steps[1:] if interrupted else steps:
            if process.poll() is not None:
                break
            process.send_signal(sig)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                continue
        return process.wait()

    def shutdown(self) -> dict[str, int]:
        """Stop every node (SIGINT to all at once, as launch does on Ctrl-C); exit codes by node name."""
        codes = {}
        interrupted = set()
        for running in reversed(self.processes):
            if running.alive:
                running.process.send_signal(signal.SIGINT)
                interrupted.add(id(running))
        for running in reversed(self.processes):
            if id(running) in interrupted:
                try:
                    running.process.wait(timeout=self.sigint_timeout_s)
                except subprocess.TimeoutExpired:
                    pass
            codes[running.node.name] = self.stop(running, interrupted=id(running) in interrupted)
        return codes

    def logs(self, chars: int = 6000) -> str:
        return "\n".join(f"--- {p.node.name} (exit {p.process.poll()}) {' '.join(p.command)} ---\n{p.log_tail(chars)}"
                         for p in self.processes)


class RosClient:
    """A plain rclpy node in its own context: the test's ``ros2 service call`` / ``ros2 topic echo``.

    Use as a context manager; it spins in a background thread.
    """

    def __init__(self, name: str = "test_client"):
        import rclpy
        from rclpy.context import Context
        from rclpy.executors import MultiThreadedExecutor

        self.context = Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"{name}_{os.getpid()}", context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=2, context=self.context)
        self.executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self._clients: dict[str, object] = {}
        self.messages: dict[str, list] = {}

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception:
            if self.context.ok():
                raise

    def client(self, srv_type, name: str):
        if name not in self._clients:
            self._clients[name] = self.node.create_client(srv_type, name)
        return self._clients[name]

    def wait_for_service(self, name: str, srv_type, timeout_s: float = 60.0) -> None:
        if not self.client(srv_type, name).wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {name} did not appear within {timeout_s}s")

    def call(self, srv_type, name: str, timeout_s: float = 30.0, **fields):
        client = self.client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise TimeoutError(f"service {name} did not appear within {timeout_s}s")
        from vla_robot.ros.executor import await_future

        return await_future(client.call_async(srv_type.Request(**fields)), timeout_s, f"service {name}")

    def subscribe(self, msg_type, topic: str, qos=10, keep: int = 100000) -> list:
        """Collect messages of ``topic`` (as (receive monotonic time, msg)) into ``self.messages[topic]``."""
        store = self.messages.setdefault(topic, [])

        def on_message(msg):
            store.append((time.monotonic(), msg))
            if len(store) > keep:
                del store[: len(store) - keep]

        self.node.create_subscription(msg_type, topic, on_message, qos)
        return store

    def wait_for(self, predicate, timeout_s: float = 30.0, what: str = "condition", poll_s: float = 0.02):
        """Poll ``predicate()`` until it returns a truthy value (returned); TimeoutError naming ``what``."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {timeout_s}s")
            time.sleep(poll_s)

    def set_parameter(self, node: str, name: str, value, timeout_s: float = 30.0):
        """``ros2 param set <node> <name> <value>``: returns (successful, reason)."""
        from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
        from rcl_interfaces.srv import SetParameters

        kinds = {bool: ("bool_value", ParameterType.PARAMETER_BOOL), int: ("integer_value", ParameterType.PARAMETER_INTEGER),
                 float: ("double_value", ParameterType.PARAMETER_DOUBLE), str: ("string_value", ParameterType.PARAMETER_STRING)}
        field_name, kind = kinds[type(value)]
        parameter = Parameter(name=name, value=ParameterValue(type=kind, **{field_name: value}))
        result = self.call(SetParameters, f"{node.rstrip('/')}/set_parameters", timeout_s=timeout_s,
                           parameters=[parameter]).results[0]
        return result.successful, result.reason

    def publisher(self, msg_type, topic: str, qos=10):
        return self.node.create_publisher(msg_type, topic, qos)

    def close(self) -> None:
        import rclpy

        self.executor.shutdown(timeout_sec=2.0)
        self.node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        self._thread.join(timeout=5.0)

    def __enter__(self) -> "RosClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
