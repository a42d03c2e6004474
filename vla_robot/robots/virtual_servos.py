"""Byte-level virtual servo chains: a pyserial-compatible object that answers like real servos.

Why: no Dynamixel or Feetech bus is attached in CI, but the drivers must be exercised
through the vendors' real packet code (dynamixel_sdk, scservo_sdk). These classes sit
where the USB-serial adapter would be: they parse every instruction packet written to
them (headers, length, CRC/checksum, byte stuffing), update per-servo control tables,
and queue status packets that the SDK then parses. Parsing here is written independently
of the SDKs, so a framing bug on either side shows up as a failed read.

They also make a dry run possible: ``make_robot("widowx", port="virtual://")``.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from vla_robot.robots.servo_bus import ControlTable

PING, READ, WRITE, SYNC_READ, SYNC_WRITE = 0x01, 0x02, 0x03, 0x82, 0x83


@dataclass
class VirtualServo:
    """One servo: a flat control table plus a first-order move toward the goal when torqued."""

    servo_id: int
    model_number: int
    actual: int = 2048  # where the horn really is, before any homing offset
    table: bytearray = field(default_factory=lambda: bytearray(256))


class _VirtualChain:
    """Shared pyserial surface: write() parses instructions, read() drains queued replies."""

    def __init__(self, servos: dict[int, VirtualServo], layout: ControlTable, baudrate: int = 1_000_000):
        """``layout`` is the real family's control table, so the virtual registers sit where the driver looks."""
        self.servos = servos
        self.layout = layout
        self.baudrate = baudrate
        self.is_open = True
        self.timeout = 0
        self.written: list[bytes] = []  # every instruction packet, for audits in tests
        self.corrupt_replies = 0  # when > 0, that many next replies get a broken CRC
        self.silent_ids: set[int] = set()  # servos that stop answering (unplugged)
        self._rx = bytearray()
        self._lock = threading.Lock()
        for servo in servos.values():
            self._put(servo, layout.model_number, 2, servo.model_number)

    # -- pyserial surface -------------------------------------------------------------
    def write(self, data) -> int:
        data = bytes(data)
        with self._lock:
            self.written.append(data)
            self._handle(data)
        return len(data)

    def read(self, size: int = 1) -> bytes:
        with self._lock:
            out = bytes(self._rx[:size])
            del self._rx[:size]
        return out

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def reset_input_buffer(self) -> None:
        with self._lock:
            self._rx.clear()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.is_open = False

    # -- servo model --------------------------------------------------------------------
    @staticmethod
    def _put(servo: VirtualServo, address: int, width: int, value: int) -> None:
        servo.table[address : address + width] = (value & ((1 << (8 * width)) - 1)).to_bytes(width, "little")

    @staticmethod
    def _get(servo: VirtualServo, address: int, width: int) -> int:
        return int.from_bytes(servo.table[address : address + width], "little")

    def actual_position(self, servo_id: int) -> int:
        """Position the horn is really at (before any homing offset)."""
        return self.servos[servo_id].actual

    def goal_position(self, servo_id: int) -> int:
        servo = self.servos[servo_id]
        raw = self._get(servo, self.layout.goal_position, self.layout.position_bytes)
        if self.layout.position_bytes == 4 and raw >= 1 << 31:
            raw -= 1 << 32
        return raw

    def torque_enabled(self, servo_id: int) -> bool:
        return bool(self.servos[servo_id].table[self.layout.torque_enable])

    def set_actual_position(self, servo_id: int, ticks: int) -> None:
        """Move a horn by hand (a leader arm, or a limp follower)."""
        servo = self.servos[servo_id]
        servo.actual = int(ticks)
        self._refresh_present(servo, velocity=0)

    def _offset(self, servo: VirtualServo) -> int:
        """Feetech: present = actual - offset (sign-magnitude, bit 11); Dynamixel has none here."""
        if self.layout.homing_offset is None:
            return 0
        raw = self._get(servo, self.layout.homing_offset, 2)
        magnitude = raw & 0x7FF
        return -magnitude if raw & 0x800 else magnitude

    def _refresh_present(self, servo: VirtualServo, velocity: int) -> None:
        self._put(servo, self.layout.present_position, self.layout.position_bytes, servo.actual - self._offset(servo))
        self._put(servo, self.layout.present_velocity, self.layout.velocity_bytes, self._encode_velocity(velocity))

    def _encode_velocity(self, velocity: int) -> int:
        return velocity

    def _after_write(self, servo: VirtualServo, address: int, width: int) -> None:
        """A torqued servo reaches its goal at once (a write is one control period later read back)."""
        goal, pos_w = self.layout.goal_position, self.layout.position_bytes
        touched_goal = address < goal + pos_w and address + width > goal
        if touched_goal and servo.table[self.layout.torque_enable]:
            before = servo.actual
            servo.actual = self.goal_position(servo.servo_id) + self._offset(servo)
            self._refresh_present(servo, velocity=servo.actual - before)
        else:
            self._refresh_present(servo, velocity=0)

    def _reply_for(self, servo_id: int) -> bool:
        return servo_id in self.servos and servo_id not in self.silent_ids

    # -- hooks a servo model behind the wire overrides (the real-time twin's servos do) --------
    def _accepts(self, servo_id: int) -> bool:
        """Whether the servo acts on instructions at all (a powered-off servo does not)."""
        return servo_id in self.servos

    def _refresh(self, servo_id: int) -> None:
        """Bring the servo's present-value registers up to date before they are read."""

    def _error(self, servo_id: int) -> int:
        """The error byte of the servo's status packets (0: no error)."""
        return 0

    def _write_table(self, servo: VirtualServo, address: int, data: bytes) -> int:
        """Store written bytes in the control table; returns the status error (0: accepted)."""
        servo.table[address : address + len(data)] = data
        self._after_write(servo, address, len(data))
        return 0

    def _other_instruction(self, servo_id: int, inst: int, params: bytes) -> None:
        """Instructions beyond ping/read/write/sync (a real servo ignores what it does not know)."""

    def _read_reply(self, servo_id: int, address: int, size: int) -> None:
        self._refresh(servo_id)
        self._status(servo_id, bytes(self.servos[servo_id].table[address : address + size]), self._error(servo_id))

    # -- instructions -------------------------------------------------------------------
    field_bytes: int  # width of the address and length fields in instruction parameters

    def _field(self, params: bytes, index: int) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _ping_params(self, servo: VirtualServo) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    def _status(self, servo_id: int, params: bytes, error: int = 0) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _handle(self, packet: bytes) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def _execute(self, servo_id: int, inst: int, params: bytes) -> None:
        """Carry out one well-framed instruction; the protocols differ only in framing and field widths."""
        if inst == PING and self._reply_for(servo_id):
            self._status(servo_id, self._ping_params(self.servos[servo_id]), self._error(servo_id))
        elif inst == READ and self._reply_for(servo_id):
            self._read_reply(servo_id, self._field(params, 0), self._field(params, 1))
        elif inst == WRITE and self._accepts(servo_id):
            addr, data = self._field(params, 0), params[self.field_bytes :]
            error = self._write_table(self.servos[servo_id], addr, bytes(data))
            if self._reply_for(servo_id):
                self._status(servo_id, b"", error or self._error(servo_id))
        elif inst == SYNC_READ:
            addr, size = self._field(params, 0), self._field(params, 1)
            for sid in params[2 * self.field_bytes :]:
                if self._reply_for(sid):
                    self._read_reply(sid, addr, size)
        elif inst == SYNC_WRITE:
            addr, size = self._field(params, 0), self._field(params, 1)
            rest = params[2 * self.field_bytes :]
            for i in range(0, len(rest), size + 1):
                sid, data = rest[i], rest[i + 1 : i + 1 + size]
                if self._accepts(sid):
                    self._write_table(self.servos[sid], addr, bytes(data))
        elif inst not in (PING, READ, WRITE):
            self._other_instruction(servo_id, inst, params)


class VirtualDynamixelChain(_VirtualChain):
    """Dynamixel Protocol 2.0 servos (XM430/XL430 control table)."""

    field_bytes = 2

    @staticmethod
    def crc16(data: bytes) -> int:
        crc = 0
        for byte in data:
            crc ^= byte << 8
            for _ in range(8):
                crc = ((crc << 1) ^ 0x8005) if crc & 0x8000 else (crc << 1)
                crc &= 0xFFFF
        return crc

    @staticmethod
    def _unstuff(body: bytes) -> bytes:
        return body.replace(b"\xff\xff\xfd\xfd", b"\xff\xff\xfd")

    @staticmethod
    def _stuff(body: bytes) -> bytes:
        return body.replace(b"\xff\xff\xfd", b"\xff\xff\xfd\xfd")

    def _status(self, servo_id: int, params: bytes, error: int = 0) -> None:
        body = self._stuff(bytes([0x55, error]) + params)
        head = bytes([0xFF, 0xFF, 0xFD, 0x00, servo_id]) + (len(body) + 2).to_bytes(2, "little")
        crc = self.crc16(head + body)
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
            crc ^= 0xFFFF
        self._rx += head + body + crc.to_bytes(2, "little")

    def _field(self, params: bytes, index: int) -> int:
        return int.from_bytes(params[2 * index : 2 * index + 2], "little")

    def _ping_params(self, servo: VirtualServo) -> bytes:
        return bytes(servo.table[0:2]) + b"\x2d"

    def _handle(self, packet: bytes) -> None:
        if packet[:4] != b"\xff\xff\xfd\x00" or len(packet) < 10:
            return
        length = int.from_bytes(packet[5:7], "little")
        if len(packet) != 7 + length or self.crc16(packet[:-2]) != int.from_bytes(packet[-2:], "little"):
            return  # a real servo ignores a corrupt packet
        self._execute(packet[4], packet[7], self._unstuff(packet[8:-2]))


class VirtualFeetechChain(_VirtualChain):
    """Feetech SCS/STS servos (STS3215 control table, checksum framing, little-endian words)."""

    field_bytes = 1

    def _encode_velocity(self, velocity: int) -> int:
        return (abs(velocity) & 0x7FFF) | (0x8000 if velocity < 0 else 0)

    @staticmethod
    def checksum(body: bytes) -> int:
        return ~sum(body) & 0xFF

    def _status(self, servo_id: int, params: bytes, error: int = 0) -> None:
        body = bytes([servo_id, len(params) + 2, error]) + params
        chk = self.checksum(body)
        if self.corrupt_replies > 0:
            self.corrupt_replies -= 1
            chk ^= 0xFF
        self._rx += b"\xff\xff" + body + bytes([chk])

    def _field(self, params: bytes, index: int) -> int:
        return params[index]

    def _ping_params(self, servo: VirtualServo) -> bytes:
        return b""

    def _handle(self, packet: bytes) -> None:
        if packet[:2] != b"\xff\xff" or len(packet) < 6:
            return
        servo_id, length, inst = packet[2], packet[3], packet[4]
        if len(packet) != 4 + length or self.checksum(packet[2:-1]) != packet[-1]:
            return
        self._execute(servo_id, inst, packet[5:-1])


def virtual_chain(kind: str, servo_ids, start_ticks: int = 2048):
    """A chain of servos at ``start_ticks``; ``kind`` is ``dynamixel`` or ``feetech``."""
    from vla_robot.robots.dynamixel_bus import XM430_TABLE
    from vla_robot.robots.feetech_bus import STS3215_TABLE

    if kind == "dynamixel":
        layout, cls, model = XM430_TABLE, VirtualDynamixelChain, 1020
    elif kind == "feetech":
        layout, cls, model = STS3215_TABLE, VirtualFeetechChain, 777
    else:
        raise ValueError(f"unknown virtual bus kind {kind!r}; choose 'dynamixel' or 'feetech'")
    chain = cls({sid: VirtualServo(sid, model) for sid in servo_ids}, layout)
    for sid in servo_ids:
        chain.set_actual_position(sid, start_ticks)
    return chain
