"""Runs a list of `vla-train` cases one after another in one process group.

The distributed tests launch this once with `torchrun --nproc_per_node 2` (gloo on CPU)
instead of once per case: starting Python, torch and transformers in two processes
costs more than a tiny case's training. Each case is {"name", "overrides"} and trains with
`training.trainer.train`, exactly as `vla-train` would.

    python -m torch.distributed.run --nproc_per_node 2 tests/distributed_runner.py cases.json
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def main(spec: str) -> int:
    from training.config import load_config
    from training.distributed import process_state
    from training.trainer import train

    state = process_state()
    assert state.num_processes == int(os.environ.get("WORLD_SIZE", "1")), "processes did not join one group"
    for case in json.loads(Path(spec).read_text()):
        t = time.perf_counter()
        train(load_config(None, case["overrides"]))
        state.wait_for_everyone()
        state.print(f"case {case['name']}: {time.perf_counter() - t:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
