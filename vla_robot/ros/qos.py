"""QoS profiles shared by every node, so publishers and subscribers always match."""

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

# Images and joint states: best effort, keep the newest few (rviz and rosbag2 accept this).
SENSOR_QOS = qos_profile_sensor_data
# Commands and episode control: reliable, a short queue so a stale burst is not replayed.
COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.VOLATILE)
# Recording commanded actions: reliable with a deep reader history, so a stalled recorder loses none.
RECORD_COMMAND_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                                durability=DurabilityPolicy.VOLATILE)
# The current instruction: late joiners get the last one.
LATCHED_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)

# Reliable variant for an in-process composed stack (vla-robot collect), where every frame counts.
RELIABLE_SENSOR_QOS = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=30, reliability=ReliabilityPolicy.RELIABLE,
                                 durability=DurabilityPolicy.VOLATILE)
SENSOR_QOS_KINDS = ("sensor_data", "reliable")


def sensor_qos(kind: str) -> QoSProfile:
    """``sensor_data`` (best effort; the default, matches any publisher) or ``reliable``
    (both ends must say so: a reliable reader does not match a best-effort writer)."""
    if kind == "sensor_data":
        return SENSOR_QOS
    if kind == "reliable":
        return RELIABLE_SENSOR_QOS
    raise ValueError(f"sensor_qos {kind!r} unknown; choose one of {SENSOR_QOS_KINDS}")


def joint_qos(kind: str) -> QoSProfile:
    """Like ``sensor_qos`` for small, frequent messages (joint states): the reliable variant keeps
    a deeper history (100), so a reader stalled for a second loses nothing."""
    if kind == "reliable":
        return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=100, reliability=ReliabilityPolicy.RELIABLE,
                          durability=DurabilityPolicy.VOLATILE)
    return sensor_qos(kind)


def latest_qos(kind: str) -> QoSProfile:
    """A controller's view of joint states: only the newest one (KEEP_LAST 1), reliable or best
    effort like ``kind`` so it matches the same publishers. A deep queue makes a lagging controller
    answer a backlog of old states one by one; the scripted teleop then ran its plan ahead of the
    arm, and the lock-stepped twin stopped waiting for it (demo episodes 19-74 steps longer than
    the plan, the arm pausing mid-motion, on a loaded CPU)."""
    base = joint_qos(kind)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1, reliability=base.reliability,
                      durability=DurabilityPolicy.VOLATILE)


def record_qos(kind: str, rate_hz: float, seconds: float = 3.0) -> QoSProfile:
    """What the recorder subscribes with: like ``sensor_qos``, but a reliable reader keeps
    ``seconds`` of samples. DDS acknowledges a reliable sample once it is in the reader's history,
    so a recorder whose executor falls behind (a loaded CPU) loses nothing until its history is
    full; with the publisher's default KEEP_LAST 10 and a 30-deep reader, a 640x480 recording on
    the loaded 2-core machine lost 78 of 3603 steps in 1-5-step holes."""
    if kind != "reliable":
        return sensor_qos(kind)
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=max(10, int(rate_hz * seconds)),
                      reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.VOLATILE)
