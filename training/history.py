"""`history.jsonl`: one row per optimizer step, consistent with the checkpoint a run resumes from.

A crash between two checkpoints leaves rows for steps the resumed run will train again.
Appending after them duplicated those steps (and a row half-written by the crash broke
readers). So a (re)started phase first rewrites the file with the rows up to its checkpoint
step, atomically, and drops a torn last line.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def read_rows(path: Path) -> list[dict]:
    """Rows of a history file; a torn line (crash mid-write) is skipped."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row:
            rows.append(row)
    return rows


class History:
    """Append-only step log of one phase, written by the main process."""

    def __init__(self, path: Path, writer: bool):
        self.path, self.writer = Path(path), writer
        self.rows: list[dict] = []

    def restart(self, step: int) -> list[dict]:
        """Keep the rows of steps <= `step` (0: a fresh start keeps none) and rewrite the file with them."""
        kept: dict[int, dict] = {}
        for row in read_rows(self.path):
            if row["step"] <= step:
                kept[row["step"]] = row  # a duplicate from an older crash: the later row wins
        self.rows = [kept[s] for s in sorted(kept)]
        if self.writer:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".jsonl.tmp")
            tmp.write_text("".join(json.dumps(r) + "\n" for r in self.rows))
            os.replace(tmp, self.path)
        return self.rows

    def append(self, row: dict) -> None:
        self.rows.append(row)
        if self.writer:
            with self.path.open("a") as f:
                f.write(json.dumps(row) + "\n")
                f.flush()
