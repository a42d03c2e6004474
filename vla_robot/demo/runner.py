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
    """One step of the job. ``weight`` is its expected share of the wall-clock (for the overall bar).

    ``alongside``: start it and go on with the next phases while it runs; it is waited for
    before the first later phase that ``needs`` it, and at the end. For work that does not
    compete for the same core (the prior trains on one CPU while collection, pinned to the
    other, records).

    ``check``: a command that validates this phase's settings in well under a second and
    exits non-zero with the reason. Every check runs before any phase starts, so a typo in a
    training setting is reported at once, not after ten minutes of collection.

    ``cpu``: run the phase's process on this one of the runner's CPUs (0 the first, -1 the
    last), where there are at least two (`cpu_pin`): for two phases that run at once, one per
    core, such as the demo's evals.
    """

    name: str
    argv: list[str]
    description: str
    weight: float = 1.0
    outputs: list[str] = field(default_factory=list)
    alongside: bool = False
    needs: tuple[str, ...] = ()
    check: list[str] = field(default_factory=list)
    cpu: int | None = None

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


def cpu_pin(index: int | None):
    """A ``preexec_fn`` that puts the child process on ``index`` of this process' CPUs, or None
    (no pin asked for, or fewer than two CPUs: nothing to choose between)."""
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if index is None or len(allowed) < 2:
        return None
    if not -len(allowed) <= index < len(allowed):
        raise ValueError(f"cpu={index}: this process may use {len(allowed)} CPUs ({allowed})")
    cpu = allowed[index]
    return lambda: os.sched_setaffinity(0, {cpu})


class PhaseRejected(RuntimeError):
    """A phase's ``check`` refused its settings; nothing has run."""


def check_phases(phases: list[Phase], env: dict[str, str] | None = None) -> None:
    """Run every phase's ``check``; raise `PhaseRejected` with the first refusal's output."""
    child_env = {**os.environ, **(env or {})}
    for phase in phases:
        if not phase.check:
            continue
        done = subprocess.run(phase.check, capture_output=True, text=True, env=child_env)
        if done.returncode != 0:
            raise PhaseRejected(
                f"phase {phase.name!r} refuses its settings (nothing has run yet)\n"
                f"check: {shlex.join(phase.check)}\n{(done.stderr or done.stdout).strip()}"
            )


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
        self.done: set[int] = set()
        self.running: dict[int, float] = {}  # index -> fraction of its expected time

    def _bar(self, fraction: float, width: int = 24) -> str:
        filled = int(round(width * min(max(fraction, 0.0), 1.0)))
        return "#" * filled + "." * (width - filled)

    def update(self, index: int, phase_elapsed: float, detail: str, expected: float, done: bool = False,
               beside: str = "") -> None:
        phase = self.phases[index]
        if done:
            self.done.add(index)
            self.running.pop(index, None)
        else:
            self.running[index] = min(phase_elapsed / max(expected, 1e-6), 0.95)
        progress = sum(self.phases[i].weight for i in self.done)
        progress += sum(self.phases[i].weight * within for i, within in self.running.items())
        fraction = progress / self.total
        status = "done" if done else "..."
        line = (
            f"[{index + 1}/{len(self.phases)}] {phase.name:<14} {_fmt(phase_elapsed):>6} {status:<4} "
            f"overall [{self._bar(fraction)}] {fraction * 100:3.0f}%  total {_fmt(time.time() - self.start)}"
        )
        if beside and not done:
            line += f"  (+ {beside})"
        if detail and not done:
            line += f"  | {detail[:70]}"
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if done else ""))
        elif done or time.time() - self._last_plain > 30:
            self._last_plain = time.time()
            self.stream.write(line + "\n")
        self.stream.flush()


@dataclass
class _Running:
    index: int
    phase: Phase
    proc: subprocess.Popen
    log: Path
    handle: object
    started: float
    expected: float


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
    """Run phases in order (``alongside`` ones beside the next), writing ``manifest_path`` as each
    ends; raise `PhaseFailed` on the first failure, after stopping any phase still running.
    Every phase's ``check`` runs first (`check_phases`).

    ``kept`` are manifest entries of phases that ran in an earlier invocation and are
    skipped now; they stay in the manifest (and so in the report's commands) before the new ones.
    """
    check_phases(phases, env)
    log_dir.mkdir(parents=True, exist_ok=True)
    display = ProgressDisplay(phases, stream)
    total_weight = sum(p.weight for p in phases) or 1.0
    results: list[PhaseResult] = []
    child_env = {**os.environ, **(env or {}), "PYTHONUNBUFFERED": "1"}
    started = time.time()
    background: list[_Running] = []
    order = {p.name: i for i, p in enumerate(phases)}

    def start(i: int, phase: Phase) -> _Running:
        log = log_dir / f"{phase.name}.log"
        fh = log.open("w")
        fh.write(f"$ {phase.command}\n")
        fh.flush()
        proc = subprocess.Popen(phase.argv, stdout=fh, stderr=subprocess.STDOUT, env=child_env,
                                preexec_fn=cpu_pin(phase.cpu))
        return _Running(i, phase, proc, log, fh, time.time(), expected_seconds * phase.weight / total_weight)

    def beside_text(shown: _Running) -> str:
        return ", ".join(f"{r.phase.name} {_fmt(time.time() - r.started)}" for r in background
                         if r is not shown and r.proc.poll() is None)

    def finish(run: _Running) -> None:
        run.handle.close()
        result = PhaseResult(run.phase.name, run.phase.command, run.phase.description, run.proc.returncode,
                             round(time.time() - run.started, 1), str(run.log), run.phase.outputs)
        results.append(result)
        results.sort(key=lambda r: order[r.name])
        _write_manifest(manifest_path, results, phases, started, header, kept or [])
        if run.proc.returncode != 0:
            display.update(run.index, result.seconds, "", run.expected, done=False)
            raise PhaseFailed(result, _tail(run.log))
        display.update(run.index, result.seconds, "", run.expected, done=True)

    def reap_background() -> None:
        for run in [r for r in background if r.proc.poll() is not None]:
            background.remove(run)
            finish(run)

    def wait_for(run: _Running, show: bool) -> None:
        while run.proc.poll() is None:
            if show:
                display.update(run.index, time.time() - run.started, _last_line(run.log), run.expected, beside=beside_text(run))
            reap_background()
            time.sleep(0.5)
        if run in background:
            background.remove(run)
        finish(run)

    foreground: list[_Running] = []
    try:
        for i, phase in enumerate(phases):
            for run in [r for r in background if r.phase.name in phase.needs]:
                wait_for(run, show=True)
            reap_background()
            run = start(i, phase)
            if phase.alongside:
                background.append(run)
                continue
            foreground[:] = [run]
            wait_for(run, show=True)
        while background:
            wait_for(background[0], show=True)
    finally:  # on a failure (or Ctrl-C) nothing is left running
        for run in foreground + background:
            if run.proc.poll() is None:
                run.proc.terminate()
                run.proc.wait()
            run.handle.close()
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
