"""Operator console: single keys in the terminal drive episodes; one live status line.

Keys: ``space`` start/stop (stop saves as success), ``f`` stop and save as failure,
``d`` discard, ``r`` re-record (discard and start again), ``q`` quit.
"""

from __future__ import annotations

import sys
import threading
from typing import Callable

KEYS = {" ": "toggle", "f": "save_failure", "d": "discard", "r": "rerecord", "q": "quit"}
HELP = "[space] start/stop+save  [f] stop+save as failure  [d] discard  [r] re-record  [q] quit"


def status_line(status: dict) -> str:
    """The live line: episode number, duration, frame rate, dropped frames and disk left."""
    state = "REC" if status.get("recording") else "idle"
    disk = status.get("disk_free_bytes", -1)
    disk_text = f"{disk / 1e9:.1f} GB free" if disk >= 0 else "disk n/a"
    dropped = status.get("dropped_steps", 0) + status.get("queue_overflows", 0)
    return (f"[{state}] ep {status.get('episode', 0)} | {status.get('duration_s', 0.0):5.1f}s | "
            f"{status.get('frames', 0)} frames @ {status.get('fps', 0.0):4.1f} Hz | dropped {dropped} | "
            f"lag p99 {status.get('lag_p99_s', 0.0) * 1000:.0f} ms | {disk_text}")


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
