"""The recording console under `ros2 launch`: collect.launch.py robot:=sim brought up as separate
processes from a colcon install (tests/process_launch.py), driven over HTTP as a page would."""

import json
import re
import time

import pytest
from test_console_server import control, request

pytestmark = pytest.mark.ros


class TwinArmRenamedUnderLaunch(AssertionError):
    """The one failure expected until twin_node keeps its arm node's name under ros2 launch."""


@pytest.mark.xfail(strict=True, raises=TwinArmRenamedUnderLaunch,
                   reason="collect.launch.py robot:=sim starts twin_node with `-r __node:=twin`, which renames every node "
                          "in that process, the arm included: /arm/estop, /arm/reset and /arm/applied_command become "
                          "/twin/...; the console's e-stop cannot reach the arm, the recorder's auto-reset cannot reset "
                          "it, and with the default action_source:=arm nothing is recorded (0 frames, 890 warm-up steps). For helper A "
                          "(twin_node under launch); strict: remove this mark when it is fixed")
def test_collect_launch_serves_the_console_and_records_through_it(tmp_path, process_launch):
    from vla_robot.data import EpisodeStore

    store = tmp_path / "demos.zarr"
    # action_source:=teleop records (and plots) the teleop's joint_trajectory: the arm's own topics are
    # misnamed under launch today (see the xfail reason); the e-stop at the end still needs /arm/estop
    nodes = process_launch.launch("collect", {"robot": "sim", "store": str(store), "console_port": "0",
                                              "preview_path": "", "action_source": "teleop"})
    assert [n.node.executable for n in nodes][-2:] == ["recorder_node", "console_node"]
    console = process_launch.process("console")
    deadline = time.monotonic() + 90
    while not (found := re.search(r"recording console on http://127\.0\.0\.1:(\d+)/", console.log_tail())):
        assert time.monotonic() < deadline and console.alive, "the console node did not serve:\n" + console.log_tail()
        time.sleep(0.2)
    port = int(found.group(1))

    def status():
        return json.loads(request(port, "GET", "/api/status")[2])

    def wait(predicate, what, timeout_s=90):
        end = time.monotonic() + timeout_s
        while not predicate(status()):
            assert time.monotonic() < end, f"timed out waiting for {what}: {status()}"
            time.sleep(0.2)

    wait(lambda s: s["recorder"]["reachable"] and s["recorder"].get("instruction"), "the recorder and its instruction")
    wait(lambda s: all(v["hz"] > 0 for v in s["streams"].values()), "every stream to reach the console")
    assert control(port, "start")[0] == 200
    wait(lambda s: s["recorder"].get("frames", 0) >= 10, "10 recorded steps")
    status_code, _, body = control(port, "save_success")
    assert status_code == 200 and "saved (success=True)" in json.loads(body)["message"]
    episodes = json.loads(request(port, "GET", "/api/episodes")[2])["episodes"]
    assert [(e["index"], e["label"]) for e in episodes] == [(0, "success")] and episodes[0]["steps"] >= 10
    assert request(port, "GET", "/api/episodes/0/thumbnail.jpg")[0] == 200
    status_code, _, estop = request(port, "POST", "/api/estop", {"X-VLA-Console": "1"}, body={})
    process_launch.assert_alive()
    process_launch.shutdown()
    assert EpisodeStore.open(store).num_episodes == 1
    if status_code != 200:  # the twin's arm answers the e-stop
        raise TwinArmRenamedUnderLaunch(f"e-stop: HTTP {status_code} {json.loads(estop)['message']}")
    assert "e-stop" in json.loads(estop)["message"]
