"""Crash safety: SIGKILL of a real writer process, concurrent readers, permission and disk-full errors."""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zarr.storage._local as zarr_local

from vla_robot.data import EpisodeStore, StoreError, StoreWriteError
from vla_robot.data.synthetic import demo_schema, demo_step, marker, write_demo_episodes

WRITER = textwrap.dedent(
    """
    import sys, time
    from vla_robot.data import EpisodeStore
    from vla_robot.data.synthetic import demo_schema, demo_step, write_demo_episodes
    url, mode, episodes, partial, delay = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
    store = EpisodeStore.create(url, demo_schema(), shard_frames=8)
    for e in range(episodes):
        with store.begin_episode(f"touch the emoji {e}", task_id=e) as ep:
            for t in range(10 + e):
                ep.append(demo_step(store.schema, e, t))
                time.sleep(delay)
            ep.commit(success=True)
        print("COMMITTED", e, flush=True)
    if mode == "hang":
        ep = store.begin_episode("never committed")
        for t in range(partial):
            ep.append(demo_step(store.schema, 99, t))
        time.sleep(1.0)  # let the background thread put the full shards on disk
        print("PARTIAL", ep.num_frames, flush=True)
        time.sleep(600)
    """
)


def start_writer(url: str, mode: str, episodes: int, partial: int = 0, delay: float = 0.0) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, url, mode, str(episodes), str(partial), str(delay)],
        stdout=subprocess.PIPE,
        text=True,
    )


def check_episode(store: EpisodeStore, e: int) -> None:
    n = 10 + e
    assert store.episode_length(e) == n
    np.testing.assert_array_equal(store.read("state", e)[:, 0], e * 1000 + np.arange(n))
    got = store.read("images/front", e)[:, 2, 2, 0].astype(int)
    assert np.abs(got - [marker(e, t) for t in range(n)]).max() <= 4
    assert store.episode_meta(e)["instruction"] == f"touch the emoji {e}"


def test_sigkill_mid_episode_discards_partial_and_keeps_committed(tmp_path: Path, caplog) -> None:
    url = str(tmp_path / "killed.zarr")
    proc = start_writer(url, "hang", episodes=2, partial=21)  # 21 frames: two shard flushes hit the disk
    lines = []
    for line in proc.stdout:
        lines.append(line.strip())
        if line.startswith("PARTIAL"):
            break
    assert lines[-1] == "PARTIAL 21"
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=30) == -signal.SIGKILL

    reader = EpisodeStore.open(url)  # read-only: sees exactly the committed episodes
    assert reader.num_episodes == 2
    for e in range(2):
        check_episode(reader, e)
    assert reader._array("data/state").shape[0] > reader.num_frames  # the partial frames are on disk

    with caplog.at_level(logging.WARNING, logger="vla_robot.data.store"):
        store = EpisodeStore.open(url, mode="a")  # the killed process's lock died with it
    assert store.discarded_frames >= 16 and "interrupted, uncommitted episode" in caplog.text
    assert store._array("data/state").shape[0] == store.num_frames == 10 + 11
    write_demo_episodes(store, [12], first_episode=2)
    check_episode(EpisodeStore.open(url), 2)
    for e in range(2):
        check_episode(EpisodeStore.open(url), e)


def test_sigkill_at_a_random_moment_of_a_busy_writer(tmp_path: Path) -> None:
    url = str(tmp_path / "busy.zarr")
    proc = start_writer(url, "run", episodes=1000, delay=0.0)
    committed = 0
    for line in proc.stdout:
        if line.startswith("COMMITTED"):
            committed = int(line.split()[1]) + 1
            if committed >= 3:
                break
    time.sleep(0.137)  # land somewhere inside the next episode's appends/flushes/commit
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    store = EpisodeStore.open(url, mode="a")
    assert store.num_episodes >= committed
    for e in range(store.num_episodes):
        check_episode(store, e)
    n = store.num_episodes
    write_demo_episodes(store, [10 + n], first_episode=n)
    check_episode(store, n)


def test_concurrent_reader_never_sees_a_half_written_episode(tmp_path: Path) -> None:
    url = str(tmp_path / "live.zarr")
    proc = start_writer(url, "run", episodes=6, delay=0.004)
    seen_counts: set[int] = set()
    checks = 0
    deadline = time.time() + 60
    reader = None
    while reader is None:  # the store exists once create() wrote its root attributes (after its arrays)
        assert time.time() < deadline, "the writer never created its store"
        try:
            reader = EpisodeStore.open(url)
        except StoreError:
            time.sleep(0.01)
    while time.time() < deadline:
        reader.refresh()
        n = reader.num_episodes
        seen_counts.add(n)
        if n:
            check_episode(reader, n - 1)  # the newest episode is always complete
            checks += 1
        if proc.poll() is not None and n == 6:
            break
    assert proc.wait(timeout=30) == 0
    assert checks > 5 and len(seen_counts) >= 3  # we really polled while episodes were appearing


def test_concurrent_reader_thread_sees_only_committed(tmp_path: Path) -> None:
    url = str(tmp_path / "threads.zarr")
    writer = EpisodeStore.create(url, demo_schema(), shard_frames=8)
    reader = EpisodeStore.open(url)
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        try:
            while not stop.is_set():
                reader.refresh()
                for e in range(reader.num_episodes):
                    check_episode(reader, e)
        except BaseException as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=poll)
    thread.start()
    for e in range(4):
        with writer.begin_episode(f"touch the emoji {e}") as ep:
            for t in range(10 + e):
                ep.append(demo_step(writer.schema, e, t))
            ep.commit(success=True)
    stop.set()
    thread.join()
    assert not errors, errors[0]


@pytest.fixture
def shared_tmp() -> Path:
    """A directory an unprivileged uid can traverse (pytest's tmp_path is 0700 root-only)."""
    path = Path(tempfile.mkdtemp(prefix="vla-perm-"))
    path.chmod(0o755)
    yield path
    for p in [path, *path.rglob("*")]:
        if p.is_dir():
            p.chmod(0o755)
    shutil.rmtree(path)


def test_permission_error_is_clear_and_committed_episodes_survive(shared_tmp: Path) -> None:
    url = str(shared_tmp / "perm.zarr")
    store = EpisodeStore.create(url, demo_schema(), shard_frames=8)
    write_demo_episodes(store, [10, 11])
    for p in (Path(url) / "data").rglob("*"):
        if p.is_dir():
            p.chmod(0o555)  # real kernel EACCES for a non-root writer
    as_root = os.geteuid() == 0
    ep = store.begin_episode("no permission")
    try:
        if as_root:
            os.seteuid(65534)  # root ignores mode bits; drop to 'nobody' for the write
        with pytest.raises(StoreWriteError, match="permission denied.*episode 2 was not committed.*2 committed"):
            for t in range(20):
                ep.append(demo_step(store.schema, 2, t))
            ep.commit(success=True)  # a background write error surfaces here at the latest
    finally:
        if as_root:
            os.seteuid(0)
    assert store.num_episodes == 2
    store.begin_episode("writer was released").discard()
    for e in range(2):
        check_episode(EpisodeStore.open(url), e)


@pytest.mark.parametrize("background", [True, False], ids=["background-writer", "inline-writer"])
def test_disk_full_is_clear_and_committed_episodes_survive(tmp_path: Path, monkeypatch, background: bool) -> None:
    url = str(tmp_path / "full.zarr")
    store = EpisodeStore.create(url, demo_schema(), shard_frames=8)
    write_demo_episodes(store, [10, 11])
    real_put = zarr_local._put

    def put_on_full_disk(path, value, exclusive=False):
        # The file layer zarr's LocalStore writes every object through: the disk is full.
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(zarr_local, "_put", put_on_full_disk)
    ep = store.begin_episode("disk full", background=background)
    with pytest.raises(StoreWriteError, match="disk full.*episode 2 was not committed.*2 committed") as info:
        for t in range(40):
            ep.append(demo_step(store.schema, 2, t))  # the first shard's write fails ...
            time.sleep(0.005)
    assert t < 39  # ... and append reports it during recording, not only at commit
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(zarr_local, "_put", real_put)
    assert store.num_episodes == 2
    for e in range(2):
        check_episode(EpisodeStore.open(url), e)
    write_demo_episodes(store, [12], first_episode=2)  # space is back: recording continues
    check_episode(EpisodeStore.open(url), 2)


def test_disk_full_during_commit_leaves_episode_invisible(tmp_path: Path, monkeypatch) -> None:
    url = str(tmp_path / "full2.zarr")
    store = EpisodeStore.create(url, demo_schema(), shard_frames=8)
    write_demo_episodes(store, [10])
    real_put = zarr_local._put

    def fail_on_meta(path, value, exclusive=False):
        if "episode_ends" in str(path):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        return real_put(path, value, exclusive=exclusive)

    monkeypatch.setattr(zarr_local, "_put", fail_on_meta)
    ep = store.begin_episode("commit fails")
    for t in range(11):
        ep.append(demo_step(store.schema, 1, t))
    with pytest.raises(StoreWriteError, match="disk full"):
        ep.commit(success=True)
    monkeypatch.setattr(zarr_local, "_put", real_put)
    assert EpisodeStore.open(url).num_episodes == 1
