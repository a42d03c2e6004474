"""Faults the real-time twin can show, as JSON payloads any process can send.

The arm node (``port:=twin``) takes them on its ``twin_fault`` parameter, so a test, a
benchmark or an operator injects one from another process with a plain parameter call::

    ros2 param set /arm twin_fault '{"kind": "block_joint", "joint": "shoulder"}'

The reply says whether it was applied, or what is wrong with the payload. Kinds:

=================  ==========================================  =========================================
kind               fields                                      what happens
=================  ==========================================  =========================================
block_joint        joint                                       the joint is held where it is (a
                                                               collision): a servo pushing against it
                                                               overloads
release_joint      joint                                       undoes block_joint
external_torque    joint, torque (N*m, N for a slide; 0 off)   a constant external load on the joint
unplug_servo       joint or id                                 the servo loses power: silent on the bus,
                                                               no torque (the joint goes limp)
replug_servo       joint or id                                 power returns: the servo boots (RAM at
                                                               power-on values, torque off)
camera_unplug      camera                                      the camera disappears (reads fail,
                                                               reconnects fail) until camera_replug
camera_replug      camera                                      the camera comes back; its device clock
                                                               restarts, as a replugged USB camera's does
camera_drops       camera, probability and/or pattern          frames lost on the device; pattern
                                                               ``every:N`` or ``burst:N:K`` (K in a row
                                                               every N); probability 0 and pattern ""
                                                               end it
camera_clock       camera, offset_s and/or drift_ppm           the device clock jumps by offset_s and/or
                                                               runs drift_ppm fast (negative: slow)
clear              --                                          every fault above is undone
=================  ==========================================  =========================================
"""

from __future__ import annotations

import json

FAULT_FIELDS: dict[str, tuple[set[str], set[str]]] = {  # kind -> (required, optional)
    "block_joint": ({"joint"}, set()),
    "release_joint": ({"joint"}, set()),
    "external_torque": ({"joint", "torque"}, set()),
    "unplug_servo": (set(), {"joint", "id"}),
    "replug_servo": (set(), {"joint", "id"}),
    "camera_unplug": ({"camera"}, set()),
    "camera_replug": ({"camera"}, set()),
    "camera_drops": ({"camera"}, {"probability", "pattern"}),
    "camera_clock": ({"camera"}, {"offset_s", "drift_ppm"}),
    "clear": (set(), set()),
}


class FaultError(ValueError):
    """A fault payload that cannot be applied; the message says what is allowed."""


def parse_fault(payload) -> dict:
    """A validated fault dict from JSON text or a dict."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            raise FaultError(f"twin fault is not valid JSON ({exc}); example: "
                             '{"kind": "block_joint", "joint": "shoulder"}') from None
    if not isinstance(payload, dict) or "kind" not in payload:
        raise FaultError(f"twin fault must be a JSON object with a 'kind'; kinds: {sorted(FAULT_FIELDS)}")
    kind = payload["kind"]
    if kind not in FAULT_FIELDS:
        raise FaultError(f"unknown twin fault kind {kind!r}; kinds: {sorted(FAULT_FIELDS)}")
    required, optional = FAULT_FIELDS[kind]
    fields = set(payload) - {"kind"}
    missing, unknown = required - fields, fields - required - optional
    if missing or unknown:
        raise FaultError(f"twin fault {kind!r}: missing {sorted(missing)}, unknown {sorted(unknown)}; "
                         f"fields: {sorted(required | optional)}")
    if kind in ("unplug_servo", "replug_servo") and len(fields) != 1:
        raise FaultError(f"twin fault {kind!r} names the servo by 'joint' or by 'id' (one of them)")
    if kind in ("camera_drops", "camera_clock") and not fields - {"camera"}:
        raise FaultError(f"twin fault {kind!r} needs at least one of {sorted(optional)}")
    for key in ("torque", "probability", "offset_s", "drift_ppm"):
        if key in payload and not isinstance(payload[key], (int, float)):
            raise FaultError(f"twin fault {kind!r}: {key} must be a number, got {payload[key]!r}")
    if "probability" in payload and not 0.0 <= payload["probability"] <= 1.0:
        raise FaultError(f"twin fault {kind!r}: probability {payload['probability']} must be in [0, 1]")
    if "pattern" in payload:
        parse_drop_pattern(payload["pattern"])
    return dict(payload)


def parse_drop_pattern(pattern: str) -> tuple[int, int]:
    """``""`` -> (0, 0); ``every:N`` -> (N, 1); ``burst:N:K`` -> (N, K): drop K frames in a row every N."""
    if not pattern:
        return 0, 0
    parts = str(pattern).split(":")
    try:
        if parts[0] == "every" and len(parts) == 2:
            period, count = int(parts[1]), 1
        elif parts[0] == "burst" and len(parts) == 3:
            period, count = int(parts[1]), int(parts[2])
        else:
            raise ValueError
    except ValueError:
        raise FaultError(f"drop pattern {pattern!r}: use 'every:N' or 'burst:N:K'") from None
    if period < 1 or not 0 < count < period:
        raise FaultError(f"drop pattern {pattern!r}: need N >= 2 and 0 < K < N")
    return period, count
