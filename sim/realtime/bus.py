"""The byte-level bus whose servos are the real-time twin's joints.

``TwinDynamixelChain`` / ``TwinFeetechChain`` are the virtual serial chains of
``vla_robot.robots.virtual_servos`` (the same packet parsing, CRC/checksum and byte stuffing,
written independently of the SDKs) with the twin's servo firmware behind them: a read
returns the physics' present values at that instant, a write goes through the firmware
(EEPROM lock, limits, shutdown) before the physics sees it, an unplugged servo is silent, and
the error byte of every status packet is the servo's (Dynamixel Alert bit, Feetech status).
The drivers (``WidowX250``, ``SO100Arm``) run unmodified on top, through dynamixel_sdk and
scservo_sdk.
"""

from __future__ import annotations

from collections import deque

from vla_robot.robots.virtual_servos import VirtualDynamixelChain, VirtualFeetechChain

from sim.realtime.physics import RealtimeTwin
from sim.realtime.servos import TwinServo

REBOOT, BULK_READ = 0x08, 0x92


class _TwinChain:
    """What the twin adds to a virtual chain; mixed in before the family's framing class."""

    def __init__(self, twin: RealtimeTwin, baudrate: int = 1_000_000, keep_packets: int = 10_000):
        self.twin = twin
        servos = {s.servo_id: s for s in twin.servos}
        super().__init__(servos, twin.servos[0].family.layout, baudrate)
        self.written = deque(maxlen=keep_packets)  # the newest instruction packets: a twin runs for hours

    def write(self, data) -> int:
        with self.twin.lock:  # one consistent physical instant per transaction
            return super().write(data)

    def _accepts(self, servo_id: int) -> bool:
        return servo_id in self.servos and self.servos[servo_id].powered

    def _reply_for(self, servo_id: int) -> bool:
        return self._accepts(servo_id) and servo_id not in self.silent_ids

    def _refresh(self, servo_id: int) -> None:
        servo: TwinServo = self.servos[servo_id]
        servo.family.refresh(servo)

    def _error(self, servo_id: int) -> int:
        servo: TwinServo = self.servos[servo_id]
        return servo.family.status_error(servo)

    def _write_table(self, servo: TwinServo, address: int, data: bytes) -> int:
        return servo.family.write(servo, address, data)

    def set_actual_position(self, servo_id: int, ticks: int) -> None:
        raise RuntimeError("the twin's horns move by physics; inject a fault or drive the servo instead")


class TwinDynamixelChain(_TwinChain, VirtualDynamixelChain):
    """Dynamixel X servos of the twin (Protocol 2.0), with REBOOT and BULK_READ."""

    def _other_instruction(self, servo_id: int, inst: int, params: bytes) -> None:
        if inst == REBOOT and self._reply_for(servo_id):
            servo = self.servos[servo_id]
            servo.family.reboot(servo)
            self._status(servo_id, b"", 0)
        elif inst == BULK_READ:
            for i in range(0, len(params) - 4, 5):
                sid = params[i]
                address = int.from_bytes(params[i + 1:i + 3], "little")
                size = int.from_bytes(params[i + 3:i + 5], "little")
                if self._reply_for(sid):
                    self._read_reply(sid, address, size)


class TwinFeetechChain(_TwinChain, VirtualFeetechChain):
    """Feetech STS servos of the twin."""


def twin_chain(twin: RealtimeTwin):
    """The chain of the servo family the twin's servos belong to."""
    family = type(twin.servos[0].family).__name__
    return {"DynamixelX": TwinDynamixelChain, "FeetechSTS": TwinFeetechChain}[family](twin)
