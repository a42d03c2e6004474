"""The demo's phase runner: real subprocesses, in order, with ``alongside`` phases overlapping the next ones."""

import json
import os
import sys
import time

import pytest

from vla_robot.demo.runner import Phase, PhaseFailed, PhaseRejected, run_phases


def _stamp(path, seconds: float, fail: bool = False) -> list[str]:
    """A phase that writes its start time, sleeps, writes its end time (and can fail instead)."""
    code = (
        "import sys, time, pathlib; p = pathlib.Path(sys.argv[1]); p.write_text(f'{time.time()}\\n');"
        f"time.sleep({seconds});"
        + ("sys.exit(3)" if fail else "p.write_text(p.read_text() + f'{time.time()}\\n')")
    )
    return [sys.executable, "-c", code, str(path)]


def _times(path) -> list[float]:
    return [float(x) for x in path.read_text().split()]


def test_alongside_phase_overlaps_the_next_and_is_joined_where_needed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    phases = [
        Phase("slow", _stamp(a, 1.5), "runs beside collect", alongside=True),
        Phase("collect", _stamp(b, 0.5), "foreground"),
        Phase("train", _stamp(c, 0.0), "needs slow", needs=("slow",)),
    ]
    results = run_phases(phases, tmp_path / "logs", tmp_path / "manifest.json", 10.0, stream=open("/dev/null", "w"))
    (a_start, a_end), (b_start, b_end), (c_start, _) = _times(a), _times(b), _times(c)
    assert b_start < a_end, "the foreground phase must start while the alongside one runs"
    assert c_start >= a_end, "a phase that needs the alongside one must wait for it"
    assert [r.name for r in results] == ["slow", "collect", "train"]  # manifest in phase order, not finish order
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert [p["name"] for p in manifest["phases"]] == ["slow", "collect", "train"] and not manifest["pending"]
    assert all(r.returncode == 0 for r in results)


def test_a_failing_phase_stops_the_alongside_one_and_names_itself(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    phases = [
        Phase("slow", _stamp(a, 60), "would run a minute", alongside=True),
        Phase("collect", _stamp(b, 0.2, fail=True), "fails"),
    ]
    t0 = time.time()
    with pytest.raises(PhaseFailed, match="'collect' failed \\(exit 3\\)"):
        run_phases(phases, tmp_path / "logs", tmp_path / "manifest.json", 10.0, stream=open("/dev/null", "w"))
    assert time.time() - t0 < 20, "the alongside phase was left running"
    assert len(_times(a)) == 1, "the alongside phase should have been stopped before it finished"


def test_a_failing_alongside_phase_fails_the_run(tmp_path):
    phases = [
        Phase("prior", _stamp(tmp_path / "a", 0.1, fail=True), "fails in the background", alongside=True),
        Phase("collect", _stamp(tmp_path / "b", 1.0), "foreground"),
        Phase("train", _stamp(tmp_path / "c", 0.0), "needs prior", needs=("prior",)),
    ]
    with pytest.raises(PhaseFailed, match="'prior' failed"):
        run_phases(phases, tmp_path / "logs", tmp_path / "manifest.json", 10.0, stream=open("/dev/null", "w"))
    assert not (tmp_path / "c").exists(), "a phase that needs a failed one must not start"
    assert len(_times(tmp_path / "b")) == 1, "the foreground phase should have been stopped with the run"


def test_a_refused_check_stops_the_run_before_any_phase_starts(tmp_path):
    refuse = [sys.executable, "-c", "import sys; sys.exit('config error: steps must be > 0')"]
    accept = [sys.executable, "-c", "pass"]
    phases = [
        Phase("collect", _stamp(tmp_path / "a", 0.0), "would record", check=accept),
        Phase("train", _stamp(tmp_path / "b", 0.0), "bad settings", check=refuse),
    ]
    with pytest.raises(PhaseRejected, match="'train' refuses its settings(.|\n)*steps must be > 0"):
        run_phases(phases, tmp_path / "logs", tmp_path / "manifest.json", 10.0, stream=open("/dev/null", "w"))
    assert not (tmp_path / "a").exists() and not (tmp_path / "logs").exists(), "a phase ran before every check passed"


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2,
                    reason="pinning chooses between CPUs; this machine lets the tests use one")
def test_a_phase_with_a_cpu_runs_on_that_core_and_one_without_keeps_them_all(tmp_path):
    allowed = sorted(os.sched_getaffinity(0))

    def affinity(name: str) -> list[str]:
        code = "import os, pathlib, sys; pathlib.Path(sys.argv[1]).write_text(repr(sorted(os.sched_getaffinity(0))))"
        return [sys.executable, "-c", code, str(tmp_path / name)]

    phases = [Phase("first", affinity("first"), "on the first core", cpu=0, alongside=True),
              Phase("last", affinity("last"), "on the last core", cpu=-1),
              Phase("free", affinity("free"), "anywhere", needs=("first",))]
    run_phases(phases, tmp_path / "logs", tmp_path / "manifest.json", 10.0, stream=open("/dev/null", "w"))
    assert (tmp_path / "first").read_text() == repr([allowed[0]])
    assert (tmp_path / "last").read_text() == repr([allowed[-1]])
    assert (tmp_path / "free").read_text() == repr(allowed)


def test_a_cpu_the_runner_does_not_have_is_named(tmp_path):
    from vla_robot.demo.runner import cpu_pin

    if len(os.sched_getaffinity(0)) < 2:
        assert cpu_pin(5) is None  # one CPU: nothing to pin to, nothing to refuse
        return
    with pytest.raises(ValueError, match="cpu=64: this process may use"):
        cpu_pin(64)


def test_the_demo_runs_one_collection_at_a_time_and_the_evals_one_per_core(tmp_path):
    """The overlaps the demo's wall clock depends on (plan.build_phases). Two composed collection
    stacks share a ROS domain and topic names, so they must never overlap (run beside each other,
    reach's recorder got no aligned frame); the evals are in-process twins and run one per core."""
    from vla_robot.demo.plan import FULL, QUICK, build_phases

    for settings in (FULL, QUICK):
        phases = build_phases(settings, tmp_path)
        collects = [p for p in phases if p.name.startswith("collect_")]
        assert collects and not any(p.alongside for p in collects)
        by_name = {p.name: p for p in phases}
        assert by_name["prior"].alongside and "prior" in by_name["train"].needs
        assert by_name["eval_train"].alongside and {by_name["eval_train"].cpu, by_name["eval_val"].cpu} == {0, -1}
        assert "eval_train" in by_name["report"].needs
