"""``ros2 service call NAME std_srvs/srv/Trigger`` as a plain rclpy process (no vla_robot import).

The fault tests and the deploy benchmark run it as its own OS process, with whatever
environment an operator's shell has (e.g. no ROS_DOMAIN_ID at all), to reach the deploy nodes
the way a person would. Each call prints one JSON line: the wall time just before the request
was sent, the reply, and the wall time the reply arrived.

    python tests/service_call.py /arm/estop [timeout_s]
    python tests/service_call.py /arm/estop [timeout_s] --on-enter

``--on-enter``: connect and find the service first, print ``ready``, then call once per line
read on stdin (an empty line calls NAME, any other line is the service to call), so a test or
a benchmark fires calls at chosen instants without paying the process start-up each time.
"""

import json
import os
import subprocess
import sys
import time


def operator_env(env_remove=("ROS_DOMAIN_ID",)) -> dict:
    """This process's environment without ``env_remove`` (an operator's shell has no ROS_DOMAIN_ID)."""
    env = dict(os.environ)
    for key in env_remove:
        env.pop(key, None)
    return env


def operator_call(name: str, env_remove=("ROS_DOMAIN_ID",), timeout: float = 30.0) -> dict:
    """One `ros2 service call` from a new process with the operator's environment."""
    out = subprocess.run([sys.executable, __file__, name, str(timeout)], env=operator_env(env_remove),
                         capture_output=True, text=True, timeout=timeout * 4)
    if out.returncode != 0:
        raise RuntimeError(f"service call {name} failed: {out.stdout}{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


class OperatorShell:
    """A service_call.py process with the operator's environment, connected once, kept open:
    ``call(name)`` sends a request at that instant and returns the JSON line it printed."""

    def __init__(self, first_service: str, env_remove=("ROS_DOMAIN_ID",), timeout: float = 60.0):
        self.process = subprocess.Popen([sys.executable, __file__, first_service, str(timeout), "--on-enter"],
                                        env=operator_env(env_remove), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline().strip()
        if line != "ready":
            self.process.kill()
            raise RuntimeError(f"service_call.py did not connect: {line} {self.process.stderr.read()}")

    def call(self, name: str = "") -> dict:
        self.process.stdin.write(name + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def __enter__(self) -> "OperatorShell":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def call(node, clients: dict, name: str, timeout: float) -> dict:
    import rclpy
    from std_srvs.srv import Trigger

    if name not in clients:
        clients[name] = node.create_client(Trigger, name)
    client = clients[name]
    if not client.wait_for_service(timeout_sec=timeout):
        return {"error": f"service {name} not available within {timeout}s"}
    sent = time.time()
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    answered = time.time()
    reply = future.result()
    return {"service": name, "sent": sent, "answered": answered, "success": bool(reply and reply.success),
            "message": reply.message if reply else "no answer"}


def main() -> int:
    import rclpy
    from std_srvs.srv import Trigger

    args = [a for a in sys.argv[1:] if a != "--on-enter"]
    name = args[0]
    timeout = float(args[1]) if len(args) > 1 else 30.0
    rclpy.init()
    node = rclpy.create_node("operator_service_call")
    clients: dict = {}
    if "--on-enter" not in sys.argv:
        out = call(node, clients, name, timeout)
        print(json.dumps(out), flush=True)
        return 0 if out.get("message") not in (None, "no answer") and "error" not in out else 1
    first = node.create_client(Trigger, name)
    clients[name] = first
    if not first.wait_for_service(timeout_sec=timeout):
        print(json.dumps({"error": f"service {name} not available within {timeout}s"}), flush=True)
        return 2
    print("ready", flush=True)
    for line in sys.stdin:
        print(json.dumps(call(node, clients, line.strip() or name, timeout)), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
