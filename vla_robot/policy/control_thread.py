"""The control loop on its own thread, paced by the wall clock.

Why a thread of its own: the policy node's ROS executor serves joint states, camera frames
and the e-stop. When the tick ran there (an rclpy timer), a synchronous inference blocked
all of them for its whole duration, and rclpy timers silently drop the periods they miss,
so the loop neither noticed deadline misses nor skipped the actions meant for them. Here
the loop runs with ``pace=True`` (``ControlLoop._wait_for_tick``: deadline misses counted,
missed steps skipped by age) on this thread; asynchronous inference runs on the loop's
worker thread; the executor only ever does callbacks.

Starting is done on this thread as well: the arm's own start (``arm_start``: it sends the
request and returns a function that waits for the answer, so the round trip overlaps the
warm-up), the episode reset, and the warm-up, which must run on the thread that will run
inference (``ControlLoop.warmup`` hands it to the worker when asynchronous). No command is
sent before the arm has answered.
"""

from __future__ import annotations

import threading
import time
from typing import Callable

from vla_robot.policy.loop import ControlLoop


class ControlThread:
    def __init__(self, loop: ControlLoop, arm_start: Callable[[], Callable[[], tuple[bool, str]] | None] | None = None,
                 on_event: Callable[[str, str], None] | None = None, name: str = "policy-control") -> None:
        self.loop = loop
        self.arm_start = arm_start
        self.on_event = on_event or (lambda level, text: None)
        self.running = False
        self.warm = False
        self.status = "idle"
        self.ticks = 0
        self.tick_errors = 0
        self._cond = threading.Condition()
        self._request: tuple[str, dict | None] | None = None
        self._generation = 0  # bumped by every stop: a start that was overtaken by a stop does not run
        self._closed = False
        self.loop.running = False
        self.loop.send_gate = lambda: self.running  # nothing goes out after a stop
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- called from any thread ------------------------------------------------------------
    def request_start(self, instruction: str, episode: dict | None = None) -> None:
        with self._cond:
            self._request = (instruction, episode)
            self.status = "starting"
            self._cond.notify_all()

    def stop(self, why: str = "stopped") -> None:
        """Stop ticking. A tick in progress sends nothing more (``loop.send_gate``); the arm node
        holds the last command from then on."""
        with self._cond:
            self._generation += 1
            self._request = None
            self.running = False
            self.loop.running = False
            self.status = why
            self._cond.notify_all()

    def close(self) -> None:
        self.stop("closed")
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10.0)

    # -- the thread --------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed and self._request is None and not self.running:
                    self._cond.wait()
                if self._closed:
                    return
                request, self._request = self._request, None
                generation = self._generation
            if request is not None:
                self._start(*request, generation=generation)
                continue
            try:
                self.loop.tick()
                self.ticks += 1
            except TimeoutError as exc:  # no state or frame yet: say so, and do not spin
                self.on_event("warning", str(exc))
                time.sleep(self.loop.wall_period)
            except Exception as exc:  # a tick must never take the thread down; the arm node holds meanwhile
                self.tick_errors += 1
                self.on_event("error", f"control tick failed: {exc!r}")
                time.sleep(self.loop.wall_period)

    def _start(self, instruction: str, episode: dict | None, generation: int) -> None:
        try:
            arm_answer = self.arm_start() if self.arm_start is not None else None
            self.loop.start_episode(instruction, episode)
            if not self.warm:
                seconds = self.loop.warmup()
                self.warm = True
                self.on_event("info", f"policy warmed up in {seconds:.2f}s")
            if arm_answer is not None:
                ok, message = arm_answer()
                if not ok:
                    self._give_up(generation, f"start refused by the arm node: {message}")
                    return
            self.loop.reset_clock()  # step 0 is now, not when the episode was set up
        except Exception as exc:  # a policy that cannot start says why; the node keeps running
            self._give_up(generation, f"policy failed to start: {exc}")
            return
        with self._cond:
            if generation != self._generation or self._closed:
                return  # a stop (or e-stop) came in while starting: it wins
            self.loop.running = True
            self.running = True
            self.status = f"running: {instruction!r}"
        self.on_event("info", self.status)

    def _give_up(self, generation: int, text: str) -> None:
        with self._cond:
            if generation == self._generation:
                self.status = text
        self.on_event("error", text)
