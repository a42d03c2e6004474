"""Run a list of phases, each a subprocess with its own command, with a live progress display.

Why subprocesses: every phase must also be runnable alone (the report prints the exact
command), and the training phases live in `training/`, which `vla_robot` never imports.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class Phase:
    """One step of the job. ``weight`` is its expected share of the wall-clock (for the overall bar)."""

    name: str
    argv: list[str]
    description: str
    weight: float = 1.0
    outputs: list[str] = field(default_factory=list)

    @property
    def command(self) -> str:
        return shlex.join(self.argv)


@dataclass
class PhaseResult:
    name: str
    command: str
    description: str
    returncode: int
    seconds: float
    log: str
    outputs: list[str]


class PhaseFailed(RuntimeError):
    def __init__(self, result: PhaseResult, tail: str) -> None:
        super().__init__(
            f"phase {result.name!r} failed (exit {result.returncode}) after {result.seconds:.0f} s\n"
            f"command: {result.command}\nlog: {result.log}\n--- last lines ---\n{tail}"
        )
        self.result = result


def _last_line(path: Path, limit: int = 4096) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - limit))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    parts = [p.strip() for p in text.replace("\r", "\n").split("\n") if p.strip()]
    return parts[-1] if parts else ""


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").replace("\r", "\n").splitlines()[-lines:])
    except OSError:
        return ""


def _fmt(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m:d}:{s:02d}"


class ProgressDisplay:
    """One status line per phase: ``[2/6] prior  1:12  overall [#####.....] 41%  <child's last line>``."""

    def __init__(self, phases: list[Phase], stream=None) -> None:
        self.phases = phases
        self.total = sum(p.weight for p in phases) or 1.0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.start = time.time()
        self._last_plain = 0.0

    def _bar(self, fraction: float, width: int = 24) -> str:
        filled = int(round(width * min(max(fraction, 0.0), 1.0)))
        return "#" * filled + "." * (width - filled)

    def update(self, index: int, phase_elapsed: float, detail: str, expected: float, done: bool = False) -> None:
        before = sum(p.weight for p in self.phases[:index])
        phase = self.phases[index]
        within = 1.0 if done else min(phase_elapsed / max(expected, 1e-6), 0.95)
        fraction = (before + phase.weight * within) / self.total
        status = "done" if done else "..."
        line = (
            f"[{index + 1}/{len(self.phases)}] {phase.name:<14} {_fmt(phase_elapsed):>6} {status:<4} "
            f"overall [{self._bar(fraction)}] {fraction * 100:3.0f}%  total {_fmt(time.time() - self.start)}"
        )
        if detail and not done:
            line += f"  | {detail[:70]}"
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if done else ""))
        elif done or time.time() - self._last_plain > 30:
            self._last_plain = time.time()
            self.stream.write(line + "\n")
        self.stream.flush()


def run_phases(
    phases: list[Phase],
    log_dir: Path,
    manifest_path: Path,
    expected_seconds: float,
    env: dict[str, str] | None = None,
    stream=None,
    header: dict | None = None,
    kept: list[dict] | None = None,
) -> list[PhaseResult]:
    """Run phases in order, writing ``manifest_path`` after each; raise `PhaseFailed` on the first failure.

    ``kept`` are manifest entries of phases that ran in an earlier invocation and are
    skipped now; they stay in the manifest (and so in the report's commands) before the new ones.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    display = ProgressDisplay(phases, stream)
    total_weight = sum(p.weight for p in phases) or 1.0
    results: list[PhaseResult] = []
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    started = time.time()
    for i, phase in enumerate(phases):
        log = log_dir / f"{phase.name}.log"
        expected = expected_seconds * phase.weight / total_weight
        t0 = time.time()
        with log.open("w") as fh:
            fh.write(f"$ {phase.command}\n")
            fh.flush()
            proc = subprocess.Popen(phase.argv, stdout=fh, stderr=subprocess.STDOUT, env=child_env)
            while proc.poll() is None:
                display.update(i, time.time() - t0, _last_line(log), expected)
                time.sleep(0.5)
        result = PhaseResult(
            phase.name, phase.command, phase.description, proc.returncode, round(time.time() - t0, 1), str(log), phase.outputs
        )
        results.append(result)
        _write_manifest(manifest_path, results, phases, started, header, kept or [])
        if proc.returncode != 0:
            display.update(i, result.seconds, "", expected, done=False)
            raise PhaseFailed(result, _tail(log))
        display.update(i, result.seconds, "", expected, done=True)
    return results


def _write_manifest(
    path: Path, results: list[PhaseResult], phases: list[Phase], started: float, header: dict | None, kept: list[dict]
) -> None:
    done = {r.name for r in results}
    new = [asdict(r) for r in results]
    kept = [k for k in kept if k["name"] not in done and k["name"] not in {p.name for p in phases}]
    data = {
        **(header or {}),
        "started_unix": started,
        "elapsed_s": round(time.time() - started + sum(k.get("seconds", 0) for k in kept), 1),
        "phases": kept + new,
        "pending": [{"name": p.name, "command": p.command} for p in phases if p.name not in done],
    }
    path.write_text(json.dumps(data, indent=2))
