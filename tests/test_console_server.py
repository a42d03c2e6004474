"""The recording console's server over real ROS: the console node and the recorder node in one
composed process, talking over DDS; requests over real HTTP.

Checks what a browser and an attacker's page can and cannot do: controls from another origin,
a rebound DNS name, missing tokens, and paths that try to leave the store.
"""

import http.client
import io
import json
import time

import numpy as np
import pytest

pytestmark = pytest.mark.ros

WS_UPGRADE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def request(port, method, path, headers=None, body=None, host="127.0.0.1"):
    """One raw HTTP request: the path goes out byte for byte (no client-side normalisation)."""
    conn = http.client.HTTPConnection(host, port, timeout=20)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        headers = {"Host": f"127.0.0.1:{port}", **(headers or {})}
        data = json.dumps(body).encode() if body is not None else b""
        if method == "POST":
            headers.setdefault("Content-Type", "application/json")
            headers["Content-Length"] = str(len(data))
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(data if method == "POST" else None)
        response = conn.getresponse()
        if response.status == 101:  # a WebSocket that was let in: stop here
            return 101, dict(response.getheaders()), b""
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def control(port, action, **headers):
    return request(port, "POST", f"/api/control/{action}", {"X-VLA-Console": "1", **headers}, body={})


def wait_for(predicate, timeout_s=20.0, what="condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def synthetic_store(tmp_path):
    from vla_robot.data import EpisodeStore
    from vla_robot.data.synthetic import demo_schema, write_demo_episodes

    url = str(tmp_path / "demos.zarr")
    schema = demo_schema(width=64, height=48, cameras=("front", "wrist"), depth=False, robot="widowx250")
    with EpisodeStore.create(url, schema) as store:
        write_demo_episodes(store, [12, 9], success=True)
        write_demo_episodes(store, [7], first_episode=2, success=False)
        store.drop_episode(1)
    return url


@pytest.fixture
def stack(composed, synthetic_store):
    """Recorder + console over DDS, and a publisher standing in for the camera and arm drivers."""
    from rclpy.node import Node
    from sensor_msgs.msg import Image, JointState

    from vla_robot.ros.console_node import ConsoleNode
    from vla_robot.ros.recorder_node import RecorderNode

    ctx = composed.context
    recorder = composed.add(RecorderNode({"store": synthetic_store, "robot": "widowx250", "cameras": "front,wrist",
                                          "width": 64, "height": 48, "instruction": "touch the emoji"}, context=ctx))
    console = composed.add(ConsoleNode({"store": synthetic_store, "robot": "widowx250", "cameras": "front,wrist",
                                        "port": 0}, context=ctx))
    drivers = composed.add(Node("drivers", context=ctx))
    pubs = {"front": drivers.create_publisher(Image, "front/image_raw", 10),
            "joints": drivers.create_publisher(JointState, "joint_states", 10)}
    composed.start()
    wait_for(lambda: console.client.status()["reachable"], what="the recorder's status to reach the console")
    return {"recorder": recorder, "console": console, "port": console.server.port, "pubs": pubs}


def test_binding_another_interface_requires_a_long_token(monkeypatch):
    from vla_robot.console.security import ConsoleConfig, ConsoleSecurityError

    monkeypatch.delenv("VLA_CONSOLE_TOKEN", raising=False)
    assert ConsoleConfig().host == "127.0.0.1"
    with pytest.raises(ConsoleSecurityError, match="exposes the robot's controls.*set a token"):
        ConsoleConfig(host="0.0.0.0")
    with pytest.raises(ConsoleSecurityError, match="at least 16"):
        ConsoleConfig(host="0.0.0.0", token="short")
    assert ConsoleConfig(host="0.0.0.0", token="t" * 16).token == "t" * 16
    monkeypatch.setenv("VLA_CONSOLE_TOKEN", "e" * 20)
    assert ConsoleConfig(host="192.168.1.5").token == "e" * 20  # the environment is the quieter place for it


def test_controls_from_another_origin_are_refused_and_the_recorder_never_starts(stack):
    port, recorder = stack["port"], stack["recorder"]

    def recording():
        return recorder.recorder is not None and recorder.recorder.recording

    attacks = [
        {"Origin": "http://evil.example"},  # a page on another site posting to the console
        {"Origin": f"http://localhost:{port}"},  # another origin on this machine (different host name)
        {"Sec-Fetch-Site": "cross-site"},  # a browser that says the request is cross-site
    ]
    for headers in attacks:
        status, _, body = control(port, "start", **headers)
        assert status == 403, (headers, body)
        assert "refused" in json.loads(body)["message"]
    status, _, body = request(port, "POST", "/api/control/start", {}, body={})  # no X-VLA-Console header
    assert status == 403 and b"X-VLA-Console" in body
    status, _, _ = request(port, "POST", "/api/estop", {"Origin": "http://evil.example", "X-VLA-Console": "1"}, body={})
    assert status == 403
    status, _, _ = request(port, "GET", "/ws", {**WS_UPGRADE, "Origin": "http://evil.example"})
    assert status == 403
    status, _, _ = request(port, "GET", "/api/status", {"Host": f"evil.example:{port}"})  # DNS rebinding
    assert status == 403
    assert not recording()

    # the console's own page (same origin) gets through, and the recorder really starts
    status, _, body = control(port, "start", Origin=f"http://127.0.0.1:{port}", **{"Sec-Fetch-Site": "same-origin"})
    assert status == 200 and json.loads(body)["ok"], body
    assert recording()
    status, _, _ = request(port, "GET", "/ws", {**WS_UPGRADE, "Origin": f"http://127.0.0.1:{port}"})
    assert status == 101
    status, _, body = control(port, "discard")
    assert status == 200 and not recording()
    status, _, body = control(port, "save_success")  # nothing recording: the recorder's answer, as a conflict
    assert status == 409 and "no episode is recording" in json.loads(body)["message"]
    status, _, body = control(port, "launch_missiles")
    assert status == 409 and "unknown action" in json.loads(body)["message"]


def test_a_token_guards_every_request_and_logs_in_once(composed, synthetic_store):
    from vla_robot.ros.console_node import ConsoleNode

    token = "s3cret-console-token"
    console = composed.add(ConsoleNode({"store": synthetic_store, "cameras": "front", "port": 0, "token": token},
                                       context=composed.context))
    composed.start()
    port = console.server.port
    for path in ("/", "/api/status", "/api/episodes", "/api/episodes/0/thumbnail.jpg", "/stream/front.mjpg"):
        status, _, _ = request(port, "GET", path)
        assert status == 401, path
    assert request(port, "GET", "/api/status", {"Authorization": "Bearer wrong-token-wrong-token"})[0] == 401
    assert request(port, "GET", "/api/status", {"Authorization": f"Bearer {token}"})[0] == 200
    assert request(port, "GET", "/?token=nope")[0] == 401
    status, headers, _ = request(port, "GET", f"/?token={token}")
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"].split(";")[0]
    assert "HttpOnly" in headers["Set-Cookie"] and "SameSite=Strict" in headers["Set-Cookie"]
    assert request(port, "GET", "/api/episodes", {"Cookie": cookie})[0] == 200
    # a token does not let other origins drive it: the cookie is sent, the origin is still checked
    assert control(port, "start", Cookie=cookie, Origin="http://evil.example")[0] == 403


TRAVERSALS = [
    "/static/../../pyproject.toml", "/static/..%2f..%2fpyproject.toml", "/static/%2e%2e/%2e%2e/pyproject.toml",
    "/static/%2e%2e%2f%2e%2e%2fpyproject.toml", "/static//etc/passwd", "/static/..\\..\\pyproject.toml",
    "/../../../../etc/passwd", "/%2e%2e/%2e%2e/%2e%2e/etc/passwd", "/static/index.html/../../../etc/passwd",
    "/api/episodes/0/frames/..%2f..%2f..%2fetc/0.jpg", "/api/episodes/0/frames/front/..%2f1.jpg",
    "/api/episodes/0/frames/%2e%2e/0.jpg", "/api/episodes/..%2f..%2fetc%2fpasswd/thumbnail.jpg",
    "/api/episodes/-1/thumbnail.jpg", "/api/episodes/99/thumbnail.jpg", "/api/episodes/0/frames/front/999.jpg",
    "/api/episodes/0/frames/depth/0.jpg", "/stream/..%2f..%2fpyproject.toml.mjpg", "/api/frame/%2e%2e.jpg",
    "/zarr.json", "/demos.zarr/zarr.json", "/data/images/front/c/0/0/0/0", "/static/zarr.json",
]


def test_nothing_outside_the_store_is_served(stack):
    from pathlib import Path

    port = stack["port"]
    secrets = [Path("/etc/passwd").read_bytes()[:20], b"[project]", b'"zarr_format"']
    for path in TRAVERSALS:
        status, headers, body = request(port, "GET", path)
        assert status in (400, 403, 404), (path, status)
        assert not any(s in body for s in secrets if s), path
        assert not headers.get("Content-Type", "").startswith(("image/", "text/plain")), path
    # what is served comes from the store, by index: episode 0's frame 5 is that frame
    status, headers, body = request(port, "GET", "/api/episodes/0/frames/front/5.jpg")
    assert status == 200 and headers["Content-Type"] == "image/jpeg"
    from PIL import Image

    from vla_robot.data.synthetic import marker

    frame = np.asarray(Image.open(io.BytesIO(body)))
    assert abs(int(frame[2:6, 2:6].mean()) - marker(0, 5)) <= 6  # the marker block encodes (episode, step)
    assert headers.get("X-Frame-Options") == "DENY" and "frame-ancestors 'none'" in headers["Content-Security-Policy"]


def test_episode_list_labels_thumbnails_and_playback_series(stack):
    port = stack["port"]
    status, _, body = request(port, "GET", "/api/episodes")
    episodes = json.loads(body)["episodes"]
    assert [e["index"] for e in episodes] == [2, 1, 0]  # newest first
    assert [e["label"] for e in episodes] == ["failure", "dropped", "success"]
    assert [e["steps"] for e in episodes] == [7, 9, 12]
    assert episodes[2]["duration_s"] == pytest.approx(12 / 30.0, abs=1e-6)
    status, headers, thumb = request(port, "GET", "/api/episodes/1/thumbnail.jpg")
    assert status == 200 and thumb[:2] == b"\xff\xd8"
    status, _, body = request(port, "GET", "/api/episodes/2")
    series = json.loads(body)
    assert series["steps"] == 7 and series["cameras"] == ["front", "wrist"]
    assert [s[0] for s in series["state"]] == [2000 + t for t in range(7)]  # state[0] = episode * 1000 + step
    assert series["action"][3][0] == pytest.approx(2003.5)


def test_live_cameras_and_joints_reach_the_page(stack):
    """A frame published on front/image_raw comes out of the MJPEG stream; joint states come out of /ws."""
    from PIL import Image as PILImage

    from vla_robot.ros.conversions import image_to_msg, joint_state_msg
    from vla_robot.robots.specs import get_robot_spec

    port, pubs = stack["port"], stack["pubs"]
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (200, 30, 30)
    rgb[:, 32:] = (20, 40, 220)
    names = get_robot_spec("widowx250").joint_names
    for k in range(20):
        pubs["front"].publish(image_to_msg(rgb, 100.0 + k / 30, "front"))
        pubs["joints"].publish(joint_state_msg(names, np.full(len(names), 0.25 + k * 0.01), None, 100.0 + k / 30))
        time.sleep(0.03)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    conn.request("GET", "/stream/front.mjpg")
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("Content-Type").startswith("multipart/x-mixed-replace")
    head = b""
    while b"\r\n\r\n" not in head:
        head += response.read(1)
    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
    frame = np.asarray(PILImage.open(io.BytesIO(response.read(length))))
    conn.close()
    assert frame.shape == (48, 64, 3)
    assert np.abs(frame[:, 4:28].astype(int) - (200, 30, 30)).mean() < 12  # red left half
    assert np.abs(frame[:, 36:60].astype(int) - (20, 40, 220)).mean() < 12  # blue right half
    status, _, body = request(port, "GET", "/api/status")
    streams = json.loads(body)["streams"]
    assert streams["front"]["hz"] > 0 and streams["state"]["hz"] > 0 and streams["wrist"]["age_s"] is None
    # the live plot data: every joint state we sent, in the arm's joint order
    newest, samples = stack["console"].live.samples_since("state", 0)
    assert newest == 20 and samples[-1][1][0] == pytest.approx(0.25 + 19 * 0.01)


def test_instruction_and_episode_control_go_through_the_recorder_services(stack):
    port, recorder = stack["port"], stack["recorder"]
    status, _, body = request(port, "POST", "/api/instruction", {"X-VLA-Console": "1"}, body={"text": "wave hello"})
    assert status == 200, body
    assert recorder.status()["instruction"] == "wave hello"
    assert request(port, "POST", "/api/instruction", {"X-VLA-Console": "1"}, body={"text": "  "})[0] == 409
    assert control(port, "toggle")[0] == 200 and recorder.recorder.recording  # space: start
    assert control(port, "rerecord")[0] == 200 and recorder.recorder.recording  # r: discard and start again
    assert recorder.recorder.stats.episodes_discarded == 1
    status, _, body = control(port, "toggle")  # space again: stop and save; no streams, so the recorder refuses
    assert status == 409 and "no aligned frames" in json.loads(body)["message"]
    assert not recorder.recorder.recording
    status, _, body = request(port, "POST", "/api/estop", {"X-VLA-Console": "1"}, body={})
    message = json.loads(body)["message"]  # no arm here: said so, and the topic went out unconfirmed
    assert status == 409 and "/arm/estop is not available" in message and "published on /estop" in message
    events = json.loads(request(port, "GET", "/api/status")[2])["events"]
    assert [e["action"] for e in events][-4:] == ["toggle", "rerecord", "toggle", "estop"]


def test_the_pages_estop_latches_the_arm_every_page_sees_it_and_only_a_confirmed_resume_moves_it(composed):
    """The console and an arm node (the WidowX driver on a byte-level virtual bus) over DDS."""
    from rclpy.node import Node
    from sensor_msgs.msg import JointState
    from test_arm_node_safety import drive_to

    from vla_robot.robots.virtual_servos import virtual_chain
    from vla_robot.robots.widowx import WidowX250, WidowXConfig
    from vla_robot.ros.arm_node import ArmNode
    from vla_robot.ros.console_node import ConsoleNode
    from vla_robot.ros.conversions import joint_state_msg
    from vla_robot.ros.qos import COMMAND_QOS

    chain = virtual_chain("dynamixel", WidowXConfig().motor_ids)
    robot = WidowX250(WidowXConfig(port="virtual://"), serial_factory=lambda port, baud: chain)
    ctx = composed.context
    arm = composed.add(ArmNode({"robot": "widowx", "publish_rate_hz": 50.0, "cmd_timeout_s": 5.0}, robot=robot,
                               context=ctx))
    console = composed.add(ConsoleNode({"store": "unused.zarr", "robot": "widowx250", "cameras": "front", "port": 0},
                                       context=ctx))
    teleop = composed.add(Node("teleop", context=ctx))
    cmd = teleop.create_publisher(JointState, "joint_command", COMMAND_QOS)
    composed.start()
    port = console.server.port

    def arm_status():
        return json.loads(request(port, "GET", "/api/status")[2])["arm"]

    wait_for(lambda: arm_status()["reachable"], what="the arm's diagnostics at the console")
    assert arm_status()["state"] == "following" and not arm_status()["estopped"]
    target = np.array([0.1, -0.2, 0.3, 0.0, 0.4, 0.0, 0.02])
    assert drive_to(arm, robot, cmd, target)

    status, _, body = request(port, "POST", "/api/estop", {"X-VLA-Console": "1"}, body={})
    assert status == 200 and "e-stop latched" in json.loads(body)["message"], body
    assert arm.guard.estopped and all(chain.torque_enabled(sid) for sid in robot.ids)  # held with torque on
    held = robot.last_targets.copy()
    wait_for(lambda: arm_status()["estopped"] and arm_status()["latched"], what="the latched e-stop on the page")
    for _ in range(10):  # the teleop goes on commanding: nothing reaches the servos
        cmd.publish(joint_state_msg(arm.names, target + [0.2, 0.2, -0.2, 0.2, -0.2, 0.2, 0.0], None, time.time()))
        time.sleep(0.03)
    wait_for(lambda: arm.guard.counts["refused_while_held"] >= 1, what="commands refused while held")
    np.testing.assert_allclose(robot.last_targets, held)

    # resuming is explicit: without {"confirm": true} nothing is released
    for body in ({}, {"confirm": "yes"}, None):
        status, _, answer = request(port, "POST", "/api/arm/resume", {"X-VLA-Console": "1"}, body=body)
        assert status == 400 and b"confirm" in answer
    assert arm.guard.estopped
    assert request(port, "POST", "/api/arm/resume", {"X-VLA-Console": "1", "Origin": "http://evil.example"},
                   body={"confirm": True})[0] == 403
    status, _, body = request(port, "POST", "/api/arm/resume", {"X-VLA-Console": "1"}, body={"confirm": True})
    assert status == 200 and "following commands" in json.loads(body)["message"], body
    assert not arm.guard.estopped and arm.guard.hold is None
    assert drive_to(arm, robot, cmd, target + [0.1, 0.1, -0.1, 0.1, -0.1, 0.1, 0.0])  # and the arm follows again
    wait_for(lambda: not arm_status()["estopped"] and arm_status()["state"] == "following", what="the page to see it")
    actions = [e["action"] for e in json.loads(request(port, "GET", "/api/status")[2])["events"]]
    assert actions == ["estop", "resume arm"]
