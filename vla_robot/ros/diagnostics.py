"""diagnostic_msgs helpers: one DiagnosticStatus from a flat dict of counters."""

from __future__ import annotations

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

from vla_robot.ros.conversions import to_time

OK, WARN, ERROR, STALE = 0, 1, 2, 3  # DiagnosticStatus levels as ints (rclpy exposes them as bytes)


def _flatten(prefix: str, value) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out += _flatten(f"{prefix}.{k}" if prefix else str(k), v)
        return out
    if isinstance(value, float):
        return [(prefix, f"{value:.6g}")]
    return [(prefix, str(value))]


def diagnostic_array(name: str, hardware_id: str, level: int, message: str, values: dict, stamp: float) -> DiagnosticArray:
    level = level[0] if isinstance(level, (bytes, bytearray)) else int(level)
    status = DiagnosticStatus(level=bytes([level]) if isinstance(DiagnosticStatus().level, bytes) else level,
                              name=name, message=message, hardware_id=hardware_id)
    status.values = [KeyValue(key=k, value=v) for k, v in _flatten("", values)]
    arr = DiagnosticArray()
    arr.header.stamp = to_time(stamp)
    arr.status = [status]
    return arr


def status_values(array: DiagnosticArray) -> dict[str, str]:
    """Flat key -> value of the first status (tests and tools read diagnostics this way)."""
    return {kv.key: kv.value for kv in array.status[0].values}


def status_level(array: DiagnosticArray) -> int:
    level = array.status[0].level
    return level[0] if isinstance(level, (bytes, bytearray)) else int(level)
