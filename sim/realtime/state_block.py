"""The twin's physical state in shared memory: one writer (the arm node's twin), many readers
(camera nodes, the scripted teleop), each in its own process.

Why shared memory and not a ROS topic: on a robot, cameras see the world directly, not
through ROS; the twin's world state is that world, so it travels beside ROS, not in it. A
camera must render the state *at its own capture instant* (a free-running clock), not the
last message that happened to arrive, and the expert needs privileged state (cube pose) no
topic carries. A DDS topic would also make every camera frame wait on discovery, QoS and
serialisation of state that is only ever read on this host.

Layout of ``/dev/shm/vla-twin-<name>`` (all little-endian 8-byte words):

* header: magic, layout version, writer pid, nq, ring slots, states written, config length,
  faults sequence, faults length;
* the twin's config as JSON (so a mirror rebuilds the same scene), and the injected camera
  faults as JSON (its own sequence counter);
* a ring of ``slots`` states: ``seq, monotonic time, sim time, episode seed, episode index,
  qpos[nq]``.

Each ring slot is a seqlock: the writer makes ``seq`` odd, writes the fields, makes it even
again; a reader copies the slot and keeps it only if ``seq`` was even and unchanged. Stores
are 8-byte aligned words made in program order (x86 keeps them in order), so a reader never
keeps a torn state. States are written every servo period (4 ms), so 1024 slots hold about
4 s of history: a camera renders the state nearest its capture time even when it runs late.
"""

from __future__ import annotations

import atexit
import json
import mmap
import os
import tempfile
import time
from dataclasses import dataclass

import numpy as np

MAGIC = int.from_bytes(b"VLATWIN1", "little")
LAYOUT_VERSION = 1
HEADER_WORDS = 16
CONFIG_OFFSET, CONFIG_BYTES = 256, 32768
FAULTS_OFFSET, FAULTS_BYTES = CONFIG_OFFSET + CONFIG_BYTES, 16384
RING_OFFSET = FAULTS_OFFSET + FAULTS_BYTES
FIELDS = 5  # seq, monotonic, sim time, seed, episode
# header word indices
_MAGIC, _VERSION, _PID, _NQ, _SLOTS, _WRITTEN, _CONFIG_LEN, _FAULTS_SEQ, _FAULTS_LEN = range(9)


_LIVE_HERE: set[str] = set()  # names this process writes now


class TwinNameInUse(RuntimeError):
    """Another live process already runs a twin under this name."""


class TwinNotRunning(RuntimeError):
    """No twin of that name exists (yet), or its process has died."""


def block_path(name: str) -> str:
    base = "/dev/shm" if os.path.isdir("/dev/shm") else tempfile.gettempdir()
    return os.path.join(base, f"vla-twin-{name}")


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class StateSample:
    monotonic: float  # the host time (time.monotonic) this physical state belongs to
    sim_time: float
    seed: int
    episode: int
    qpos: np.ndarray


class TwinStateBlock:
    """Writer (``create``) or reader (``attach``) of one twin's shared state."""

    def __init__(self, name: str, path: str, fd: int, mm: mmap.mmap, writable: bool):
        self.name, self.path, self.writable = name, path, writable
        self._fd, self._mm = fd, mm
        self.header = np.frombuffer(mm, dtype=np.int64, count=HEADER_WORDS)
        nq, slots = int(self.header[_NQ]), int(self.header[_SLOTS])
        self.nq, self.slots = nq, slots
        words = slots * (FIELDS + nq)
        self._ints = np.frombuffer(mm, dtype=np.int64, count=words, offset=RING_OFFSET).reshape(slots, FIELDS + nq)
        self._floats = np.frombuffer(mm, dtype=np.float64, count=words, offset=RING_OFFSET).reshape(slots, FIELDS + nq)
        self._faults_seen = -1
        self._faults: dict = {}

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def create(cls, name: str, config: dict, nq: int, slots: int = 1024) -> "TwinStateBlock":
        path = block_path(name)
        if os.path.exists(path):
            owner = cls._owner_of(path)
            if name in _LIVE_HERE or (owner != os.getpid() and pid_alive(owner)):
                raise TwinNameInUse(f"twin name {name!r} is in use by process {owner} ({path}); give this twin "
                                    f"another name, e.g. port:=twin://widowx250?name={name}2")
            os.unlink(path)  # a stale block left by a killed process
        text = json.dumps(config).encode()
        if len(text) > CONFIG_BYTES:
            raise ValueError(f"twin config is {len(text)} bytes as JSON; the shared block holds {CONFIG_BYTES}")
        size = RING_OFFSET + slots * (FIELDS + nq) * 8
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        os.ftruncate(fd, size)
        mm = mmap.mmap(fd, size)
        header = np.frombuffer(mm, dtype=np.int64, count=HEADER_WORDS)
        header[_NQ], header[_SLOTS], header[_PID], header[_VERSION] = nq, slots, os.getpid(), LAYOUT_VERSION
        mm[CONFIG_OFFSET:CONFIG_OFFSET + len(text)] = text
        header[_CONFIG_LEN] = len(text)
        header[_MAGIC] = MAGIC  # last: a reader sees a complete block or none
        del header
        _LIVE_HERE.add(name)
        atexit.register(cls._remove_if_mine, path)  # a process that dies without close() leaves no block
        return cls(name, path, fd, mm, writable=True)

    @classmethod
    def _remove_if_mine(cls, path: str) -> None:
        try:
            if cls._owner_of(path) == os.getpid():
                os.unlink(path)
        except FileNotFoundError:
            pass

    @staticmethod
    def _owner_of(path: str) -> int:
        try:
            with open(path, "rb") as f:
                head = np.frombuffer(f.read(HEADER_WORDS * 8), dtype=np.int64)
            return int(head[_PID]) if len(head) > _PID else -1
        except OSError:
            return -1

    @classmethod
    def attach(cls, name: str, timeout_s: float = 0.0) -> "TwinStateBlock":
        """Open a running twin's block read-only; waits up to ``timeout_s`` for it to appear."""
        path = block_path(name)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fd = os.open(path, os.O_RDONLY)
                size = os.fstat(fd).st_size
                if size > RING_OFFSET:
                    mm = mmap.mmap(fd, size, prot=mmap.PROT_READ)
                    header = np.frombuffer(mm, dtype=np.int64, count=HEADER_WORDS)
                    ready = header[_MAGIC] == MAGIC and header[_VERSION] == LAYOUT_VERSION
                    del header
                    if ready:
                        block = cls(name, path, fd, mm, writable=False)
                        if block.alive:
                            return block
                        block.close()
                        raise TwinNotRunning(f"twin {name!r} ({path}) was left by process {block.owner}, "
                                             "which is gone; start the arm node with port:=twin://...?name=" + name)
                    mm.close()
                os.close(fd)
            except FileNotFoundError:
                pass
            if time.monotonic() >= deadline:
                raise TwinNotRunning(f"no twin named {name!r} is running ({path} not found); start the arm node "
                                     f"with port:=twin://widowx250?name={name} (or twin://so100?name={name})")
            time.sleep(0.1)

    @property
    def owner(self) -> int:
        return int(self.header[_PID])

    @property
    def alive(self) -> bool:
        return pid_alive(self.owner)

    @property
    def config(self) -> dict:
        n = int(self.header[_CONFIG_LEN])
        return json.loads(bytes(self._mm[CONFIG_OFFSET:CONFIG_OFFSET + n]))

    @property
    def written(self) -> int:
        return int(self.header[_WRITTEN])

    def close(self, unlink: bool | None = None) -> None:
        """Readers detach; the writer also removes the block (unless ``unlink=False``)."""
        unlink = self.writable if unlink is None else unlink
        self.header = self._ints = self._floats = None
        try:
            self._mm.close()
        except BufferError:  # a numpy view still alive somewhere: leave the mapping to the GC
            pass
        os.close(self._fd)
        if self.writable:
            _LIVE_HERE.discard(self.name)
        if unlink:
            self._remove_if_mine(self.path)

    # -- states -----------------------------------------------------------------------------
    def write_state(self, monotonic: float, sim_time: float, seed: int, episode: int, qpos: np.ndarray) -> None:
        n = int(self.header[_WRITTEN])
        i = n % self.slots
        row_i, row_f = self._ints[i], self._floats[i]
        seq = int(row_i[0])
        row_i[0] = seq + 1 if seq % 2 == 0 else seq + 2  # odd: being written
        row_f[1], row_f[2] = monotonic, sim_time
        row_i[3], row_i[4] = seed, episode
        row_f[FIELDS:] = qpos
        row_i[0] = int(row_i[0]) + 1  # even: complete
        self.header[_WRITTEN] = n + 1

    def _read_slot(self, i: int) -> StateSample | None:
        row_i, row_f = self._ints[i], self._floats[i]
        before = int(row_i[0])
        if before == 0 or before % 2:
            return None
        sample = StateSample(float(row_f[1]), float(row_f[2]), int(row_i[3]), int(row_i[4]), row_f[FIELDS:].copy())
        return sample if int(row_i[0]) == before else None

    def latest(self) -> StateSample | None:
        n = self.written
        for back in range(min(n, 8)):  # the newest slot may be mid-write: step back one
            sample = self._read_slot((n - 1 - back) % self.slots)
            if sample is not None:
                return sample
        return None

    def at(self, monotonic: float) -> StateSample | None:
        """The newest state at or before ``monotonic`` (the oldest kept one if none is that old)."""
        n = self.written
        oldest = None
        for back in range(min(n, self.slots - 1)):
            sample = self._read_slot((n - 1 - back) % self.slots)
            if sample is None:
                continue
            if sample.monotonic <= monotonic:
                return sample
            oldest = sample
        return oldest

    # -- camera faults ------------------------------------------------------------------------
    def write_faults(self, faults: dict) -> None:
        text = json.dumps(faults).encode()
        if len(text) > FAULTS_BYTES:
            raise ValueError(f"fault table is {len(text)} bytes as JSON; the shared block holds {FAULTS_BYTES}")
        seq = int(self.header[_FAULTS_SEQ])
        self.header[_FAULTS_SEQ] = seq + 1 if seq % 2 == 0 else seq + 2
        self._mm[FAULTS_OFFSET:FAULTS_OFFSET + len(text)] = text
        self.header[_FAULTS_LEN] = len(text)
        self.header[_FAULTS_SEQ] = int(self.header[_FAULTS_SEQ]) + 1

    def faults(self) -> dict:
        """The fault table the twin's host last wrote (parsed again only when it changed)."""
        for _ in range(100):
            seq = int(self.header[_FAULTS_SEQ])
            if seq == self._faults_seen:
                return self._faults
            if seq % 2:
                time.sleep(0.0005)
                continue
            n = int(self.header[_FAULTS_LEN])
            text = bytes(self._mm[FAULTS_OFFSET:FAULTS_OFFSET + n])
            if int(self.header[_FAULTS_SEQ]) == seq:
                self._faults = json.loads(text) if n else {}
                self._faults_seen = seq
                return self._faults
        return self._faults
