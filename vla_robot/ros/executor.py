"""Run several nodes in one process: the embedded default composes the stack this way."""

from __future__ import annotations

import gc
import os
import threading
import time

import rclpy
from rclpy.context import Context
from rclpy.executors import MultiThreadedExecutor


def local_dds_env() -> None:
    """Discovery never leaves this host unless the operator set otherwise.

    Only composed stacks (``ComposedProcess``: ``vla-robot collect/deploy/eval``, the sim
    stacks) call this: they are self-contained programs whose nodes talk to each other.
    A standalone node (``spin_single``: what ``ros2 launch`` / ``ros2 run`` start) never does,
    so it joins the operator's ``ROS_DOMAIN_ID`` and a ``ros2 service call /arm/estop`` or a
    separately started ``joy_node`` reaches it.
    """
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", "61")


class ComposedProcess:
    """A private rclpy context + a multi-threaded executor spinning in a background thread."""

    def __init__(self, threads: int = 4):
        local_dds_env()
        self.context = Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=threads, context=self.context)
        self.nodes = []
        self._thread: threading.Thread | None = None

    def add(self, node):
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def start(self) -> None:
        freeze_startup_objects()
        self._thread = threading.Thread(target=self._spin, name="ros-executor", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        try:
            self.executor.spin()
        except Exception as exc:
            if self.context.ok():  # a real failure, not a shutdown race
                import traceback

                traceback.print_exc()
                raise exc

    def shutdown(self) -> None:
        for node in self.nodes:
            close = getattr(node, "close", None)
            if close:
                close()
        self.executor.shutdown(timeout_sec=2.0)
        for node in self.nodes:
            node.destroy_node()
        if self.context.ok():
            rclpy.shutdown(context=self.context)
        if self._thread:
            self._thread.join(timeout=5.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.shutdown()


def await_future(future, timeout_s: float, what: str):
    """The result of an rclpy future that another thread's executor completes; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout_s
    while not future.done():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not answer within {timeout_s}s")
        time.sleep(0.005)
    return future.result()


def pin_to_one_core() -> set[int] | None:
    """Run this thread, and every thread it starts from now on, on a single CPU.

    Returns the CPU set it had (give it back with ``os.sched_setaffinity(0, previous)``).

    A composed stack is many Python threads (executor, its workers, the twin clock, DDS
    listeners) sharing one GIL. Spread over two cores they hand the GIL back and forth
    across CPUs on every message, and the executor's wait loop wins most hand-offs: the
    sim collection stack ran at 7-28 s per episode that way, and at 2.5 s pinned to one
    core (``taskset -c 0`` gave the same), with a third of the CPU time. It only pins
    what starts after the call, and never on a one-CPU machine.
    """
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(allowed) < 2:
        return None
    os.sched_setaffinity(0, {allowed[-1]})
    return set(allowed)


class OneCorePin:
    """`pin_to_one_core` and its undo: ``release`` gives the caller's thread its CPUs back.

    ``enabled=False`` pins nothing (and ``release`` does nothing), so a stack can make
    pinning a setting without branching around it.
    """

    def __init__(self, enabled: bool = True) -> None:
        self._before = pin_to_one_core() if enabled else None

    def release(self) -> None:
        if self._before:
            os.sched_setaffinity(0, self._before)
            self._before = None


def freeze_startup_objects() -> None:
    """Move everything alive at start-up out of the garbage collector's reach.

    Full collections walk every tracked object; with torch, MuJoCo and the ROS stack loaded
    that is 100-150 ms per pass, often several in a row, and each pass stalls every node
    thread (a 100 Hz JointState timer was seen delivering 2-10 Hz). Start-up objects live for
    the whole process, so freezing them (``gc.freeze``) keeps later passes short.
    """
    gc.collect()
    gc.freeze()


def spin_single(node_factory, args=None, threads: int = 1) -> None:
    """Entry point body for a one-node executable (``ros2 run`` / launch).

    ``threads`` > 1 spins a multi-threaded executor, so callbacks in a callback group of their
    own (the arm node's e-stop) run while another callback (a servo bus read) is still busy.

    It leaves ``ROS_DOMAIN_ID`` and the discovery range to the environment (the operator's
    domain). SIGINT, as ``ros2 launch`` sends it, ends the spin through rclpy's own handler
    (``ExternalShutdownException``) or as ``KeyboardInterrupt``; either way the node's
    ``close()`` runs, so drivers release their ports and twins their shared memory.
    """
    import signal

    from rclpy.executors import ExternalShutdownException
    from rclpy.impl.implementation_singleton import rclpy_implementation

    RCLError = rclpy_implementation.RCLError
    rclpy.init(args=args)
    node = None
    try:  # a SIGINT may come while the node is still starting (launch stopped early): exit quietly then too
        node = node_factory()
        freeze_startup_objects()
        if threads > 1:
            from rclpy.executors import MultiThreadedExecutor

            rclpy.spin(node, executor=MultiThreadedExecutor(num_threads=threads))
        else:
            rclpy.spin(node)
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RCLError:
        # SIGINT's shutdown can land between the executor's context check and its next wait set:
        # rcl then refuses the wait set ("the given context is not valid") instead of rclpy raising
        # ExternalShutdownException. Seen once in CI as the recorder exiting 1 on a normal stop. A
        # shutdown in progress is a clean exit; the same error on a live context is a real one.
        if rclpy.ok():
            raise
    finally:
        # rclpy's handler and Python's both act on one SIGINT: the second arrives as a KeyboardInterrupt
        # a moment later. Ignore further SIGINTs (launch escalates to SIGTERM if need be) and let a
        # pending one interrupt close() at most once.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        for _ in range(2):
            try:
                close = getattr(node, "close", None)
                if close:
                    close()
                break
            except KeyboardInterrupt:
                continue
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
