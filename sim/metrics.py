"""The paper's three rates over a set of episodes."""

from __future__ import annotations

from typing import Iterable


def summarise(results: Iterable[dict]) -> dict:
    """Exe. SR, Rec. SR (recognised among executed) and overall SR from ``Twin.evaluate()`` dicts.

    Rec. SR is NaN when nothing was executed: a recognition rate of no attempts is undefined,
    and reporting 0 would read as "recognised wrongly".
    """
    results = list(results)
    n = len(results)
    if n == 0:
        raise ValueError("summarise() needs at least one episode result")
    for i, r in enumerate(results):
        missing = {"executed", "recognised", "success"} - set(r)
        if missing:
            raise ValueError(f"episode {i} result lacks {sorted(missing)}; pass Twin.evaluate() dicts")
    executed = sum(bool(r["executed"]) for r in results)
    recognised = sum(bool(r["executed"]) and bool(r["recognised"]) for r in results)
    success = sum(bool(r["success"]) for r in results)
    return {
        "episodes": n,
        "executed": executed,
        "recognised": recognised,
        "success": success,
        "exe_sr": executed / n,
        "rec_sr": recognised / executed if executed else float("nan"),
        "sr": success / n,
    }
