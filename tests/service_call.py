"""``ros2 service call NAME std_srvs/srv/Trigger`` as a plain rclpy process (no vla_robot import).

The fault tests run it as its own OS process, with whatever environment an operator's shell
has (e.g. no ROS_DOMAIN_ID at all), to reach the deploy nodes the way a person would. Prints
one JSON line: the wall time just before the request was sent, the reply, and the wall time
the reply arrived.

    python tests/service_call.py /arm/estop [timeout_s] [--on-enter]

``--on-enter``: connect and find the service first, print ``ready``, and send the request when a
line arrives on stdin (a test fires it at a chosen instant without paying the process start-up).
"""

import json
import sys
import time

import rclpy
from std_srvs.srv import Trigger


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--on-enter"]
    name = args[0]
    timeout = float(args[1]) if len(args) > 1 else 30.0
    rclpy.init()
    node = rclpy.create_node("operator_service_call")
    client = node.create_client(Trigger, name)
    if not client.wait_for_service(timeout_sec=timeout):
        print(json.dumps({"error": f"service {name} not available within {timeout}s"}), flush=True)
        return 2
    if "--on-enter" in sys.argv:
        print("ready", flush=True)
        sys.stdin.readline()
    sent = time.time()
    future = client.call_async(Trigger.Request())
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    answered = time.time()
    reply = future.result()
    print(json.dumps({"sent": sent, "answered": answered, "success": bool(reply and reply.success),
                      "message": reply.message if reply else "no answer"}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0 if reply is not None else 1


if __name__ == "__main__":
    sys.exit(main())
