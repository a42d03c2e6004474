"""Issue 17's acceptance check: N fresh-clone `make demo` runs, each judged on the issue's bars.

    python -m vla_robot.demo.acceptance --repo /work/main --runs 3          # ~16-20 min per run, one after another
    python -m vla_robot.demo.acceptance --judge out/demo                    # judge a finished run directory only

Each run clones the repository into a fresh directory, runs `make demo` there (set-up included:
venv, pip, compile) and reads what the demo wrote: `out/demo/report/metrics.json` (the
report's numbers, with the binomial p-value against a random card) and
`out/demo/eval/<split>/report.json` (safety events and episode lengths). It prints a table,
writes `bench/results/demo_acceptance.json`, and exits 1 when a run misses a bar:

| bar | value |
|---|---|
| wall clock, set-up included | <= 20 min |
| train Exe. SR | >= 80 % |
| train Rec. SR | >= 90 % |
| val Rec. SR | >= 75 %, p < 0.01 against a random card |
| safety clamps (position + velocity) | < 5 % of control steps |

Run it on a quiet machine: the demo's phases are timed on the wall clock, and a loaded CPU
only makes the 20-minute bar harder (the success rates come from lock-stepped evaluations
and do not depend on load).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

BARS = {"minutes": 20.0, "train_exe": 0.80, "train_rec": 0.90, "val_rec": 0.75, "val_p": 0.01, "clamp_frac": 0.05}
ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "bench" / "results" / "demo_acceptance.json"


def judge(run_dir: Path) -> dict:
    """The issue's numbers from one finished demo directory (``out/demo``)."""
    rows = {r["split"]: r for r in json.loads((run_dir / "report" / "metrics.json").read_text())}
    out: dict = {}
    steps = clamps = 0
    for split in ("train", "val"):
        r = rows[split]
        out[f"{split}_exe"], out[f"{split}_rec"] = r["exe_sr"], r["rec_sr"]
        out[f"{split}_p"] = r.get("p_vs_random")
        report = json.loads((run_dir / "eval" / split / "report.json").read_text())
        steps += sum(int(e["steps"]) for e in report["episodes"])
        safety = report["runtime"]["safety"]
        clamps += int(safety.get("position_clamp", 0)) + int(safety.get("velocity_clamp", 0))
        out[f"{split}_safety"] = {k: v for k, v in safety.items() if v}
    out["clamp_frac"] = clamps / max(steps, 1)
    manifest = run_dir / "demo_manifest.json"
    if manifest.exists():
        out["demo_seconds"] = json.loads(manifest.read_text()).get("elapsed_s")
    return out


def verdict(result: dict) -> dict[str, bool]:
    checks = {
        "train Exe. SR >= 80 %": (result.get("train_exe") or 0) >= BARS["train_exe"],
        "train Rec. SR >= 90 %": (result.get("train_rec") or 0) >= BARS["train_rec"],
        "val Rec. SR >= 75 %, p < 0.01": (result.get("val_rec") or 0) >= BARS["val_rec"]
        and result.get("val_p") is not None and result["val_p"] < BARS["val_p"],
        "clamps < 5 % of steps": result["clamp_frac"] < BARS["clamp_frac"],
    }
    if "minutes" in result:
        checks["<= 20 min, set-up included"] = result["minutes"] <= BARS["minutes"]
    return checks


def fresh_run(repo: str, commit: str, workdir: Path, index: int, domain: int) -> dict:
    clone = workdir / f"run{index}"
    if clone.exists():
        shutil.rmtree(clone)
    subprocess.run(["git", "clone", "--quiet", repo, str(clone)], check=True)
    if commit:
        subprocess.run(["git", "-C", str(clone), "checkout", "--quiet", commit], check=True)
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    env.pop("VIRTUAL_ENV", None)
    t0 = time.monotonic()
    with (workdir / f"run{index}.log").open("w") as log:
        proc = subprocess.run(["make", "demo"], cwd=clone, env=env, stdout=log, stderr=subprocess.STDOUT)
    minutes = (time.monotonic() - t0) / 60
    if proc.returncode != 0:
        return {"run": index, "minutes": minutes, "error": f"make demo exited {proc.returncode}; see {log.name}"}
    result = judge(clone / "out" / "demo")
    result.update(run=index, minutes=minutes, commit=subprocess.run(
        ["git", "-C", str(clone), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip())
    return result


def table(results: list[dict]) -> str:
    head = "| run | minutes | train Exe. SR | train Rec. SR | val Exe. SR | val Rec. SR (p) | clamps / steps | all bars |"
    lines = [head, "|" + "---|" * 8]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['run']} | {r['minutes']:.1f} | {r['error']} |||||| no |")
            continue
        p = f"{r['val_p']:.1e}" if r.get("val_p") is not None else "n/a"
        ok = all(verdict(r).values())
        lines.append(f"| {r.get('run', '-')} | {r.get('minutes', float('nan')):.1f} | {r['train_exe']:.1%} | "
                     f"{r['train_rec']:.1%} | {r['val_exe']:.1%} | {r['val_rec']:.1%} ({p}) | {r['clamp_frac']:.1%} | "
                     f"{'yes' if ok else 'no: ' + ', '.join(k for k, v in verdict(r).items() if not v)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=str(ROOT), help="repository to clone (path or URL)")
    ap.add_argument("--commit", default="", help="commit to check out (default: the clone's HEAD)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/demo_acceptance", help="where the fresh clones go (deleted after unless --keep)")
    ap.add_argument("--domain", type=int, default=int(os.environ.get("ROS_DOMAIN_ID", "61")), help="ROS_DOMAIN_ID of the runs")
    ap.add_argument("--keep", action="store_true", help="keep the clones (each ~1.5 GB with its venv)")
    ap.add_argument("--judge", default="", help="only judge this finished demo directory (e.g. out/demo)")
    args = ap.parse_args(argv)
    if args.judge:
        results = [{"run": "-", **judge(Path(args.judge))}]
    else:
        workdir = Path(args.workdir)
        workdir.mkdir(parents=True, exist_ok=True)
        results = []
        for i in range(1, args.runs + 1):
            print(f"run {i}/{args.runs}: fresh clone of {args.repo} → {workdir / f'run{i}'}; make demo ...", flush=True)
            results.append(fresh_run(args.repo, args.commit, workdir, i, args.domain))
            print(table(results[-1:]), flush=True)
            if not args.keep:
                shutil.rmtree(workdir / f"run{i}", ignore_errors=True)
    print(table(results))
    passed = all("error" not in r and all(verdict(r).values()) for r in results)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"bars": BARS, "runs": results, "passed": passed}, indent=2))
    print(f"{'PASSED' if passed else 'FAILED'}: {RESULTS}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
