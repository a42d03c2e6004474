"""Operator console: single keys in the terminal drive episodes; one live status line.

Keys: ``space`` start/stop (stop saves as success), ``f`` stop and save as failure,
``d`` discard, ``r`` re-record (discard and start again), ``q`` quit.
The same keys work in the recorder's own terminal (``console:=true`` under ``ros2 run``) and in
``vla-robot console`` (its own terminal, talking to the recorder through its services).
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

KEYS = {" ": "toggle", "f": "save_failure", "d": "discard", "r": "rerecord", "q": "quit"}
HELP = "[space] start/stop+save  [f] stop+save as failure  [d] discard  [r] re-record  [q] quit"


def _short(stream: str) -> str:
    return stream.split("/", 1)[-1] if stream.startswith(("images/",)) else stream


def status_line(status: dict) -> str:
    """The live line: state, episode, duration, steps stored vs expected, holes, per-stream skew
    p99, writer lag, disk left, and the level with the first problem (e.g. a silent camera)."""
    state = {"recording": "REC", "failed": "FAILED"}.get(status.get("state", ""), "REC" if status.get("recording") else "idle")
    disk = status.get("disk_free_bytes", -1)
    disk_text = f"{disk / 1e9:.1f} GB free" if disk >= 0 else "disk n/a"
    dropped = status.get("dropped_steps", 0) + status.get("queue_overflows", 0)
    streams = status.get("streams", {})
    skew = " ".join(f"{_short(name)} {info.get('skew_p99_ms', 0.0):.0f}" for name, info in streams.items())
    level = status.get("level", "OK")
    problems = status.get("problems") or []
    tail = level if level == "OK" or not problems else f"{level}: {problems[0]}"
    return (f"[{state}] ep {status.get('episode', 0)} | {status.get('duration_s', 0.0):5.1f}s | "
            f"{status.get('frames', 0)}/{status.get('expected_steps', status.get('frames', 0))} steps "
            f"@ {status.get('fps', 0.0):4.1f} Hz | dropped {dropped}"
            + (f" | skew p99 ms {skew}" if skew else "")
            + f" | lag p99 {status.get('lag_p99_s', 0.0) * 1000:.0f} ms | {disk_text} | {tail}")


class OperatorConsole:
    """Reads keys from a TTY in a thread and calls ``handler(action)``; prints the status line."""

    def __init__(self, handler: Callable[[str], None], stream=None):
        self.handler = handler
        self.out = stream or sys.stdout
        self._thread: threading.Thread | None = None
        self.running = False

    def handle_key(self, key: str) -> str | None:
        action = KEYS.get(key.lower() if key != " " else key)
        if action:
            self.handler(action)
        return action

    def show(self, status: dict) -> None:
        self.out.write("\r" + status_line(status).ljust(110))
        self.out.flush()

    def start(self) -> bool:
        if not sys.stdin.isatty():
            return False
        self.running = True
        self.out.write(HELP + "\n")
        self._thread = threading.Thread(target=self._loop, name="operator-console", daemon=True)
        self._thread.start()
        return True

    def _loop(self) -> None:
        import termios
        import tty

        fd = sys.stdin.fileno()
        old = termios.tcgetattr(fd)
        try:
            tty.setcbreak(fd)
            while self.running:
                key = sys.stdin.read(1)
                if not key or self.handle_key(key) == "quit":
                    break
        finally:
            termios.tcsetattr(fd, termios.TCSADRAIN, old)
            self.running = False
