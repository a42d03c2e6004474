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
    """Reads single keys and calls ``handler(action)``; redraws the status line in place."""

    def __init__(self, handler: Callable[[str], None], stream=None, stdin=None):
        self.handler = handler
        self.out = stream or sys.stdout
        self.stdin = stdin or sys.stdin
        self._thread: threading.Thread | None = None
        self._width = 0
        self.running = False

    def handle_key(self, key: str) -> str | None:
        action = KEYS.get(key.lower() if key != " " else key)
        if action:
            self.handler(action)
        return action

    def show(self, status: dict) -> None:
        self.show_line(status_line(status))

    def show_line(self, line: str) -> None:
        width, self._width = self._width, len(line)
        self.out.write("\r" + line.ljust(width))
        self.out.flush()

    def say(self, text: str) -> None:
        """A message on its own line; the status line is redrawn below it at the next update."""
        self.out.write("\r" + text.ljust(self._width) + "\n")
        self.out.flush()
        self._width = 0

    def start(self) -> bool:
        """Read keys in a background thread; only on a terminal (under ros2 launch there is none)."""
        if not self.stdin.isatty():
            return False
        self.out.write(HELP + "\n")
        self.running = True
        self._thread = threading.Thread(target=self.read_keys, name="operator-console", daemon=True)
        self._thread.start()
        return True

    def read_keys(self) -> None:
        """Read keys until ``q`` or the end of input: single keys (cbreak) on a terminal, plain
        characters from a pipe."""
        import os

        self.running = True
        fd = self.stdin.fileno()
        old = None
        if self.stdin.isatty():
            import termios
            import tty

            old = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        try:
            while self.running:
                key = os.read(fd, 1).decode(errors="ignore")
                if not key or self.handle_key(key) == "quit":
                    break
        finally:
            if old is not None:
                import termios

                termios.tcsetattr(fd, termios.TCSADRAIN, old)
            self.running = False
