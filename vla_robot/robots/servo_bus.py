"""One sync-read/sync-write servo bus over a vendor SDK (dynamixel_sdk or scservo_sdk).

Why one class: scservo_sdk is a fork of dynamixel_sdk with the same PortHandler /
PacketHandler / GroupSyncRead / GroupSyncWrite surface, so the Dynamixel and Feetech
buses differ only in their control table and protocol. Both go through this code and
the SDK's own packet framing; only the serial object can be swapped (a virtual chain in
tests, ``serial.serial_for_url`` otherwise, so ``/dev/ttyUSB0`` and pyserial URLs work).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

SerialFactory = Callable[[str, int], object]


class ServoBusError(RuntimeError):
    """A bus transaction failed (timeout, corrupt reply, servo error); the message names ids and address."""


@dataclass(frozen=True)
class ControlTable:
    """Register addresses and widths of one servo family."""

    family: str
    model_number: int
    torque_enable: int
    goal_position: int
    present_position: int
    present_velocity: int
    position_bytes: int
    velocity_bytes: int
    ticks_per_rev: int
    velocity_unit_rad_s: float  # one raw velocity unit in rad/s
    velocity_sign_bit: int | None  # sign-magnitude bit (Feetech); None for two's complement
    position_sign_bit: int | None = None
    homing_offset: int | None = None
    operating_mode: int | None = None  # EEPROM (written with torque off only)
    # Profile registers (RAM): the servo's own trajectory generator limits speed and acceleration,
    # so a held goal is approached, and a stop decelerates, within the arm spec's limits.
    profile_velocity: tuple[int, int] | None = None  # (address, width)
    profile_acceleration: tuple[int, int] | None = None
    profile_velocity_unit_rad_s: float = 0.0  # one raw unit, motor rad/s
    profile_acceleration_unit_rad_s2: float = 0.0
    hardware_error: int | None = None  # 1-byte status register: which faults the servo has latched
    hardware_error_bits: tuple[tuple[int, str], ...] = ()  # (bit, name) of that register
    alert_mask: int = 0  # status-packet error bits that report a servo fault rather than a failed instruction

    def decode_signed(self, raw: int, width: int, sign_bit: int | None = None) -> int:
        if sign_bit is not None:
            return -(raw & ((1 << sign_bit) - 1)) if raw & (1 << sign_bit) else raw & ((1 << sign_bit) - 1)
        return raw - (1 << (8 * width)) if raw >= 1 << (8 * width - 1) else raw

    @property
    def fault_mask(self) -> int:
        """The bits of the hardware-error register that name a fault."""
        return sum(1 << bit for bit, _ in self.hardware_error_bits)

    def describe_hardware_error(self, status: int) -> list[str]:
        """Names of the fault bits set in a hardware-error status value (unknown bits by number)."""
        known = dict(self.hardware_error_bits)
        return [known.get(bit, f"bit {bit}") for bit in range(8) if status & (1 << bit)]


def default_serial_factory(port: str, baudrate: int):
    """Open ``port`` with pyserial (a device path or any pyserial URL such as ``loop://``)."""
    if port.startswith("virtual://"):
        raise ValueError("virtual:// ports are made by the arm driver, not by the serial factory")
    import serial

    return serial.serial_for_url(port, baudrate=baudrate, bytesize=8, timeout=0)


class ServoBus:
    """Sync read/write of positions and velocities for a fixed set of servo ids."""

    def __init__(
        self,
        sdk: ModuleType,
        packet_handler,
        table: ControlTable,
        port: str,
        baudrate: int = 1_000_000,
        serial_factory: SerialFactory | None = None,
    ):
        self.sdk = sdk
        self.table = table
        self.port_name = port
        self.baudrate = baudrate
        self.packet = packet_handler
        self._serial_factory = serial_factory or default_serial_factory
        self._lock = threading.Lock()
        self.errors = 0
        self.alerts: dict[int, int] = {}  # servo id -> the last fault bits its status packets carried
        self.port = self._make_port_handler()

    def _make_port_handler(self):
        factory = self._serial_factory

        class _Port(self.sdk.PortHandler):
            def setupPort(self, cflag_baud):  # noqa: N802 - SDK name
                if self.is_open:
                    self.closePort()
                self.ser = factory(self.port_name, self.baudrate)
                self.is_open = True
                self.ser.reset_input_buffer()
                self.tx_time_per_byte = (1000.0 / self.baudrate) * 10.0
                return True

        return _Port(self.port_name)

    # -- lifecycle ----------------------------------------------------------------------
    def open(self) -> None:
        if not self.port.setBaudRate(self.baudrate):
            raise ServoBusError(f"{self.table.family}: cannot open {self.port_name} at {self.baudrate} baud")

    def close(self) -> None:
        if self.port.is_open:
            self.port.closePort()

    # -- transactions -------------------------------------------------------------------
    def _check(self, result: int, error: int, what: str, servo_id: int | None = None) -> None:
        """Raise on a failed transaction. A fault *alert* in the reply (Dynamixel's bit 7, every
        bit of a Feetech status byte) is not a failed instruction: the servo carried it out and
        says it has a hardware fault. It is recorded in ``alerts`` for the guard to read the
        fault register, instead of failing the write that may be the hold command."""
        if result != self.sdk.COMM_SUCCESS:
            self.errors += 1
            raise ServoBusError(f"{self.table.family} on {self.port_name}: {what}: {self.packet.getTxRxResult(result)}")
        if error and servo_id is not None and error & self.table.alert_mask:
            self.alerts[servo_id] = error & self.table.alert_mask
            error &= ~self.table.alert_mask
        if error:
            self.errors += 1
            raise ServoBusError(f"{self.table.family} on {self.port_name}: {what}: {self.packet.getRxPacketError(error)}")

    def ping(self, servo_id: int) -> int:
        """Return the servo's model number; raise naming the id when it does not answer."""
        with self._lock:
            model, result, error = self.packet.ping(self.port, servo_id)
        self._check(result, error, f"ping id {servo_id} (is it powered, wired, and at {self.baudrate} baud?)", servo_id)
        return int(model)

    def read(self, servo_id: int, address: int, width: int) -> int:
        """One register of one servo, unsigned."""
        reader = {1: self.packet.read1ByteTxRx, 2: self.packet.read2ByteTxRx, 4: self.packet.read4ByteTxRx}[width]
        with self._lock:
            value, result, error = reader(self.port, servo_id, address)
        self._check(result, error, f"read id {servo_id} address {address}", servo_id)
        return int(value)

    def write(self, servo_id: int, address: int, value: int, width: int) -> None:
        raw = value & ((1 << (8 * width)) - 1)
        writer = {1: self.packet.write1ByteTxRx, 2: self.packet.write2ByteTxRx, 4: self.packet.write4ByteTxRx}[width]
        with self._lock:
            result, error = writer(self.port, servo_id, address, raw)
        self._check(result, error, f"write id {servo_id} address {address}", servo_id)

    def set_torque(self, servo_ids, enabled: bool) -> None:
        self.sync_write(self.table.torque_enable, 1, {sid: int(enabled) for sid in servo_ids})

    def sync_write(self, address: int, width: int, values: dict[int, int]) -> None:
        group = self.sdk.GroupSyncWrite(self.port, self.packet, address, width)
        for sid, value in values.items():
            group.addParam(sid, list((int(value) & ((1 << (8 * width)) - 1)).to_bytes(width, "little")))
        with self._lock:
            result = group.txPacket()
        self._check(result, 0, f"sync write address {address} ids {sorted(values)}")

    def sync_read(self, address: int, width: int, servo_ids) -> dict[int, int]:
        group = self.sdk.GroupSyncRead(self.port, self.packet, address, width)
        for sid in servo_ids:
            group.addParam(sid)
        with self._lock:
            result = group.txRxPacket()
        self._check(result, 0, f"sync read address {address} ids {list(servo_ids)}")
        out = {}
        for sid in servo_ids:
            if not group.isAvailable(sid, address, width):
                self.errors += 1
                raise ServoBusError(f"{self.table.family}: no data from id {sid} at address {address}")
            out[sid] = group.getData(sid, address, width)
        return out

    def read_positions(self, servo_ids) -> dict[int, int]:
        t = self.table
        raw = self.sync_read(t.present_position, t.position_bytes, servo_ids)
        return {sid: t.decode_signed(v, t.position_bytes, t.position_sign_bit) for sid, v in raw.items()}

    def read_velocities(self, servo_ids) -> dict[int, float]:
        t = self.table
        raw = self.sync_read(t.present_velocity, t.velocity_bytes, servo_ids)
        return {sid: t.decode_signed(v, t.velocity_bytes, t.velocity_sign_bit) * t.velocity_unit_rad_s for sid, v in raw.items()}

    def write_goal_positions(self, ticks: dict[int, int]) -> None:
        self.sync_write(self.table.goal_position, self.table.position_bytes, ticks)

    def read_hardware_errors(self, servo_ids) -> dict[int, int]:
        """The fault register of each servo (0 = healthy); empty when the family has none."""
        if self.table.hardware_error is None:
            return {}
        return self.sync_read(self.table.hardware_error, 1, servo_ids)
