"""WidowX (Dynamixel P2.0) and SO-100 (Feetech STS) drivers through the vendors' real SDK
packet code, with only the wire faked by a byte-level virtual servo chain."""

import json
import math

import numpy as np
import pytest

from vla_robot.robots.calibration import load_calibration
from vla_robot.robots.dynamixel_bus import XM430_TABLE
from vla_robot.robots.feetech_bus import STS3215_TABLE
from vla_robot.robots.limits import NonFiniteCommandError
from vla_robot.robots.servo_arm import EStopActive
from vla_robot.robots.servo_bus import ServoBusError
from vla_robot.robots.so100 import SO100Arm, SO100Config
from vla_robot.robots.specs import SO100, WIDOWX_250
from vla_robot.robots.virtual_servos import VirtualDynamixelChain, virtual_chain
from vla_robot.robots.widowx import WidowX250, WidowXConfig

TICK = 2 * math.pi / 4096


def widowx_on_chain(**cfg):
    config = WidowXConfig(port="virtual://", **cfg)
    chain = virtual_chain("dynamixel", config.motor_ids)
    arm = WidowX250(config, serial_factory=lambda port, baud: chain)
    return arm, chain


def sync_writes(chain, address):
    """Decode SYNC_WRITE packets from the raw bytes on the wire (independent of the SDK)."""
    out = []
    dxl = isinstance(chain, VirtualDynamixelChain)
    for pkt in chain.written:
        if dxl and pkt[7] == 0x83 and int.from_bytes(pkt[8:10], "little") == address:
            size, rest = int.from_bytes(pkt[10:12], "little"), pkt[12:-2]
        elif not dxl and pkt[4] == 0x83 and pkt[5] == address:
            size, rest = pkt[6], pkt[7:-1]
        else:
            continue
        goals = {}
        for i in range(0, len(rest), size + 1):
            value = int.from_bytes(rest[i + 1 : i + 1 + size], "little")
            goals[rest[i]] = value - (1 << 32) if size == 4 and value >= 1 << 31 else value
        out.append(goals)
    return out


def test_widowx_reads_joint_units_through_dynamixel_sdk():
    arm, chain = widowx_on_chain()
    arm.connect()
    for sid, ticks in zip(arm.ids, (2048 + 512, 2048 - 256, 3000, 1000, 2048, 2100, 2800)):
        chain.set_actual_position(sid, ticks)
    chain.servos[1].table[128:132] = (-10 & 0xFFFFFFFF).to_bytes(4, "little")  # present velocity, two's complement
    state = arm.read_state()
    np.testing.assert_allclose(state.positions[:6], np.array([512, -256, 952, -1048, 0, 52]) * TICK, atol=1e-9)
    assert state.positions[6] == pytest.approx(WIDOWX_250.gripper_open)  # 2800 ticks = open
    assert state.velocities[0] == pytest.approx(-10 * 0.229 * 2 * math.pi / 60)
    assert all(chain.torque_enabled(sid) for sid in arm.ids)


def test_widowx_goal_positions_on_the_wire_match_targets():
    arm, chain = widowx_on_chain()
    arm.connect()
    target = np.array([0.2, -0.1, 0.25, 0.0, 0.3, -0.2, WIDOWX_250.gripper_closed])
    arm.send_joint_targets(target)
    goals = sync_writes(chain, XM430_TABLE.goal_position)[-1]
    expected = [round(2048 + v / TICK) for v in target[:6]] + [1600]
    assert [goals[sid] for sid in arm.ids] == expected
    np.testing.assert_allclose(arm.read_state().positions, target, atol=TICK)


def test_hostile_commands_never_reach_the_wire_out_of_limits():
    arm, chain = widowx_on_chain()
    arm.connect()
    rng = np.random.default_rng(0)
    hostile = [np.full(7, 1e6), np.full(7, -1e6), rng.normal(0, 50, 7), np.array(WIDOWX_250.upper) * 3]
    for cmd in hostile * 3:
        arm.send_joint_targets(cmd)
    with pytest.raises(NonFiniteCommandError):
        arm.send_joint_targets(np.array([np.nan] + [0.0] * 6))
    with pytest.raises(ValueError, match="expected 7 joint targets"):
        arm.send_joint_targets(np.zeros(3))
    writes = sync_writes(chain, XM430_TABLE.goal_position)
    assert len(writes) == 1 + len(hostile) * 3  # torque-on hold + the accepted commands only
    lower = [round(2048 + v / TICK) - 1 for v in WIDOWX_250.lower[:6]]
    upper = [round(2048 + v / TICK) + 1 for v in WIDOWX_250.upper[:6]]
    max_step = [math.ceil(v * arm.max_step_dt / TICK) + 1 for v in WIDOWX_250.max_velocity[:6]]
    previous = None
    for goals in writes:
        ticks = [goals[sid] for sid in arm.ids]
        for j in range(6):
            assert lower[j] <= ticks[j] <= upper[j], (j, ticks[j])
            if previous is not None:
                assert abs(ticks[j] - previous[j]) <= max_step[j], (j, ticks[j], previous[j])
        assert 1600 <= ticks[6] <= 2800
        previous = ticks
    assert arm.clamp.position_clamps >= len(hostile) * 3 - 1
    assert arm.commands_refused == 2


def test_estop_holds_the_last_command_with_torque_on_and_refuses_commands_until_released():
    """Stop category 2: the servos keep torque and hold the last commanded goal (a WidowX has no
    brakes; torque off dropped it). Commands are refused while latched; release moves nothing."""
    arm, chain = widowx_on_chain()
    arm.connect()
    target = np.array([0.2, -0.1, 0.25, 0.0, 0.3, -0.2, WIDOWX_250.gripper_closed])
    arm.send_joint_targets(target)
    n_goals = len(sync_writes(chain, XM430_TABLE.goal_position))
    held = arm.estop()
    np.testing.assert_allclose(held, target)
    assert all(chain.torque_enabled(sid) for sid in arm.ids)
    goals = sync_writes(chain, XM430_TABLE.goal_position)
    assert len(goals) == n_goals + 1 and goals[-1] == goals[-2]  # the hold is the last goal, written again
    n = len(chain.written)
    with pytest.raises(EStopActive):
        arm.send_joint_targets(np.array(WIDOWX_250.home))
    assert len(chain.written) == n  # nothing reached the wire
    arm.release_estop()
    assert len(chain.written) == n  # release alone writes nothing
    np.testing.assert_allclose(arm.read_state().positions, target, atol=TICK)
    arm.send_joint_targets(arm.read_state().positions)


def register_writes(chain, address):
    """Single WRITE instructions to ``address`` on the wire: [(id, value)] (independent of the SDK)."""
    out = []
    dxl = isinstance(chain, VirtualDynamixelChain)
    for pkt in chain.written:
        if dxl and pkt[7] == 0x03 and int.from_bytes(pkt[8:10], "little") == address:
            out.append((pkt[4], int.from_bytes(pkt[10:-2], "little")))
        elif not dxl and pkt[4] == 0x03 and pkt[5] == address:
            out.append((pkt[2], int.from_bytes(pkt[6:-1], "little")))
    return out


def test_widowx_servo_settings_at_connect_and_eeprom_written_only_when_different():
    from vla_robot.robots.dynamixel_bus import DRIVE_MODE

    arm, chain = widowx_on_chain()
    for sid in arm.ids:
        chain.servos[sid].table[DRIVE_MODE] = 0x05  # reversed + time-based profile, as Interbotix ships it
    arm.connect()
    modes = {sid: chain.servos[sid].table[XM430_TABLE.operating_mode] for sid in arm.ids}
    assert [modes[sid] for sid in arm.ids] == [3] * 7  # position mode, the gripper too (an XL430: no current mode)
    assert all(chain.servos[sid].table[DRIVE_MODE] == 0x01 for sid in arm.ids)  # direction bit kept, profile velocity-based
    velocity = {sid: int.from_bytes(chain.servos[sid].table[112:116], "little") for sid in arm.ids}
    accel = {sid: int.from_bytes(chain.servos[sid].table[108:112], "little") for sid in arm.ids}
    assert velocity[1] == 131  # 3.14 rad/s in 0.229 rpm units: Interbotix's own Velocity_Limit
    assert accel[1] == round(10.0 / (214.577 * 2 * math.pi / 3600))  # 10 rad/s^2
    gripper_rad_s = 0.1 / abs(arm.joints[-1].units_per_tick) * 2 * math.pi / 4096  # 0.1 m/s of finger travel
    assert velocity[9] == round(gripper_rad_s / (0.229 * 2 * math.pi / 60))
    first = {(w.servo_id, w.name) for w in arm.settings_written}
    assert (1, "operating mode") in first and (9, "profile velocity") in first
    arm.close()

    n_mode_writes = len(register_writes(chain, XM430_TABLE.operating_mode))
    arm2 = WidowX250(WidowXConfig(port="virtual://"), serial_factory=lambda port, baud: chain)
    for sid in arm.ids:
        chain.servos[sid].table[XM430_TABLE.torque_enable] = 0
    arm2.connect()
    assert arm2.settings_written == []  # everything already matched: no EEPROM (or RAM) write at all
    assert len(register_writes(chain, XM430_TABLE.operating_mode)) == n_mode_writes


def test_eeprom_setting_that_differs_under_torque_is_refused_not_fixed_by_dropping_the_arm():
    from vla_robot.robots.servo_setup import ServoConfigError

    arm, chain = widowx_on_chain()
    arm.connect()
    arm.close()
    chain.servos[4].table[XM430_TABLE.operating_mode] = 16  # someone left the elbow in PWM mode, arm torqued
    arm2 = WidowX250(WidowXConfig(port="virtual://"), serial_factory=lambda port, baud: chain)
    n = len(chain.written)
    with pytest.raises(ServoConfigError, match="id 4: operating mode is 16, the arm needs 3.*torque off"):
        arm2.connect()
    assert all(chain.torque_enabled(sid) for sid in arm.ids)  # nobody switched torque off
    assert not [p for p in chain.written[n:] if p[7] in (0x03, 0x83)]  # and nothing was written


def test_hardware_error_register_is_read_and_named():
    arm, chain = widowx_on_chain()
    arm.connect()
    assert arm.read_hardware_errors() == {}
    chain.servos[4].table[70] = 0x20 | 0x04  # elbow: overload + overheating
    chain.servos[9].table[70] = 0x01
    assert arm.read_hardware_errors() == {4: ["overheating", "overload"], 9: ["input voltage"]}


class AlertingDynamixelChain(VirtualDynamixelChain):
    """Status packets carry the Alert bit (0x80) while a servo's Hardware Error Status is set."""

    def _status(self, servo_id, params, error=0):
        super()._status(servo_id, params, error | (0x80 if self.servos[servo_id].table[70] else 0))


def test_a_fault_alert_does_not_fail_the_hold_write_and_is_recorded():
    config = WidowXConfig(port="virtual://")
    plain = virtual_chain("dynamixel", config.motor_ids)
    chain = AlertingDynamixelChain(plain.servos, XM430_TABLE)
    arm = WidowX250(config, serial_factory=lambda port, baud: chain)
    arm.connect()
    chain.servos[6].table[70] = 0x20
    arm.bus.write(6, XM430_TABLE.goal_position, 2048, 4)  # the servo executes it and raises its alert flag
    assert arm.bus.alerts == {6: 0x80} and arm.bus.errors == 0
    assert arm.read_hardware_errors() == {6: ["overload"]}
    chain.servos[6].table[70] = 0


def test_so100_status_register_names_feetech_faults():
    chain = virtual_chain("feetech", range(1, 7))
    arm = SO100Arm(SO100Config(port="virtual://"), serial_factory=lambda port, baud: chain)
    arm.connect()
    chain.servos[3].table[65] = 0x20 | 0x10  # overload; bit 4 is not a fault bit
    assert arm.read_hardware_errors() == {3: ["overload"]}


def test_bus_faults_raise_errors_that_name_the_problem():
    arm, chain = widowx_on_chain()
    chain.silent_ids.add(7)
    with pytest.raises(ServoBusError, match="ping id 7"):
        arm.connect()
    chain.silent_ids.clear()
    arm.connect()
    chain.corrupt_replies = 1
    with pytest.raises(ServoBusError, match="sync read"):
        arm.read_state()
    assert arm.bus.errors == 2
    arm.read_state()  # the bus recovers on the next transaction


def write_calibration(path, drive_modes=(0, 1, 0, 0, 1, 0), offsets=(100, -300, 0, 5, -2047, 40)):
    cal = {
        name: {"id": i + 1, "drive_mode": dm, "homing_offset": off, "range_min": 1000, "range_max": 3100}
        for i, (name, dm, off) in enumerate(zip(SO100.joint_names, drive_modes, offsets))
    }
    path.write_text(json.dumps(cal))
    return cal


def test_so100_calibration_offsets_drive_mode_and_range(tmp_path):
    cal = write_calibration(tmp_path / "follower.json")
    config = SO100Config(port="virtual://", calibration_path=str(tmp_path / "follower.json"))
    chain = virtual_chain("feetech", range(1, 7))
    arm = SO100Arm(config, serial_factory=lambda port, baud: chain)
    arm.connect()
    for i, name in enumerate(SO100.joint_names):  # homing offsets written sign-magnitude (bit 11)
        raw = int.from_bytes(chain.servos[i + 1].table[31:33], "little")
        off = cal[name]["homing_offset"]
        assert raw == (abs(off) | (0x800 if off < 0 else 0))
    chain.set_actual_position(2, 2048 + 100 - 300)  # shoulder_lift: actual 100 ticks past zero, reversed
    chain.set_actual_position(1, 2048 + 100 + 200)
    state = arm.read_state()
    assert state.positions[0] == pytest.approx(200 * TICK)
    assert state.positions[1] == pytest.approx(-100 * TICK)
    speed = (1 << 15) | 40  # sign-magnitude: -40 steps/s on the reversed joint -> +40 ticks/s of joint
    chain.servos[2].table[58:60] = speed.to_bytes(2, "little")
    assert arm.read_state().velocities[1] == pytest.approx(40 * TICK)
    arm.send_joint_targets(np.array([1.9, -3.3, 3.1, 1.6, 2.7, 1.7]))  # far outside the calibrated range
    writes = sync_writes(chain, STS3215_TABLE.goal_position)
    assert len(writes) == 2  # the torque-on hold at the present pose, then the command
    for goals in writes[1:]:
        assert all(1000 <= t <= 3100 for t in goals.values()), goals
    locks = register_writes(chain, 55)
    changed = [i + 1 for i, name in enumerate(SO100.joint_names) if cal[name]["homing_offset"] != 0]
    assert locks == [(sid, v) for sid in changed for v in (0, 1)]  # unlocked around each write that changes an offset
    assert all(chain.servos[sid].table[33] == 0 for sid in range(1, 7))  # position mode
    assert chain.servos[1].table[41] == round(10.0 / (100 * TICK))  # 10 rad/s^2 in 100 steps/s^2

    arm.close()
    for sid in range(1, 7):
        chain.servos[sid].table[40] = 0
    n_offsets = len(register_writes(chain, 31))
    again = SO100Arm(config, serial_factory=lambda port, baud: chain)
    again.connect()
    assert len(register_writes(chain, 31)) == n_offsets  # same calibration: the EEPROM is left alone


def test_calibration_file_errors_name_the_joint_and_allowed_values(tmp_path):
    path = tmp_path / "bad.json"
    write_calibration(path, drive_modes=(0, 2, 0, 0, 0, 0))
    with pytest.raises(ValueError, match="'shoulder_lift': drive_mode 2; allowed 0 or 1"):
        load_calibration(path, SO100)
    cal = json.loads(write_calibration(path) and path.read_text())
    del cal["gripper"]
    path.write_text(json.dumps(cal))
    with pytest.raises(ValueError, match=r"missing joints \['gripper'\]"):
        load_calibration(path, SO100)


def test_factory_builds_each_arm_and_names_allowed_parameters():
    from vla_robot.robots.factory import make_robot

    arm = make_robot("widowx", port="virtual://")
    arm.connect()
    assert arm.read_state().positions.shape == (7,)
    so = make_robot("so100", port="virtual://")
    so.connect()
    so.send_joint_targets(np.zeros(6))
    assert so.commands_sent == 1
    with pytest.raises(ValueError, match="unknown parameters \\['speed'\\]"):
        make_robot("widowx", speed=3)
    with pytest.raises(ValueError, match="choose one of"):
        make_robot("ur5")


def test_calibration_procedure_on_a_virtual_so100(tmp_path):
    import threading
    import time

    from vla_robot.robots.calibrate import calibration_from, sample_ranges, zero_offsets
    from vla_robot.robots.feetech_bus import feetech_bus

    chain = virtual_chain("feetech", range(1, 7))
    zero_pose = [2100, 1900, 2048, 3000, 1000, 2200]
    for sid, ticks in zip(range(1, 7), zero_pose):
        chain.set_actual_position(sid, ticks)
    bus = feetech_bus("virtual://", serial_factory=lambda port, baud: chain)
    bus.open()
    offsets = zero_offsets(bus, list(range(1, 7)))
    assert [offsets[s] for s in range(1, 7)] == [t - 2048 for t in zero_pose]
    assert all(v == 2048 for v in bus.read_positions(list(range(1, 7))).values())  # zero pose reads 2048

    stop = threading.Event()

    def operator():  # sweeps each joint +-500 ticks around its zero, then says done
        for delta in (-500, 500, 0):
            for sid, ticks in zip(range(1, 7), zero_pose):
                chain.set_actual_position(sid, ticks + delta)
            time.sleep(0.05)
        stop.set()

    threading.Thread(target=operator).start()
    ranges = sample_ranges(bus, list(range(1, 7)), stop, period_s=0.005, margin=10)
    cal = calibration_from(offsets, ranges)
    assert cal["shoulder_pan"].range_min == 2048 - 500 + 10 and cal["gripper"].range_max == 2048 + 500 - 10
    from vla_robot.robots.calibration import load_calibration, save_calibration

    save_calibration(tmp_path / "so100.json", cal)
    assert load_calibration(tmp_path / "so100.json", SO100) == cal
    with pytest.raises(ValueError, match="did not move"):
        calibration_from(offsets, {sid: (2048, 2048) for sid in range(1, 7)})
