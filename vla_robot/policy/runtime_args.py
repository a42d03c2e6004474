"""Command-line options shared by `vla-robot deploy` and `vla-robot eval` -> ``RuntimeConfig``."""

from __future__ import annotations

import argparse
import dataclasses

from vla_robot.policy.config import (COMPILE_MODES, DTYPES, GRAPH_MODES, MERGE_MODES, ChunkConfig, RuntimeConfig,
                                     SafetyConfig)


# A new policy on a real arm moves at a quarter of the joint speed limits unless told otherwise
# (the WidowX's limits are 3.14 rad/s: a full-speed swing reaches the table in a fraction of a second).
HARDWARE_VELOCITY_SCALE = 0.25


def add_runtime_arguments(parser: argparse.ArgumentParser, asynchronous_default: bool) -> None:
    g = parser.add_argument_group("runtime")
    g.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    g.add_argument("--dtype", default="float32", choices=DTYPES, help="backbone dtype (the head stays float32)")
    g.add_argument("--cuda-graph", default="auto", choices=GRAPH_MODES, help="capture the action head in a CUDA graph")
    g.add_argument("--vlm-compile", default="off", choices=COMPILE_MODES,
                   help="torch.compile the VLM forward (reduce-overhead = with CUDA graphs); opt-in")
    g.add_argument("--prompt-bucket", type=int, default=0,
                   help="left-pad prompts to a multiple of this many tokens (one compiled graph per bucket)")
    g.add_argument("--control-hz", type=float, default=None,
                   help="control rate (the twin's rate too); default: the bundle's training rate, else 10")
    g.add_argument("--override-control-hz", action="store_true",
                   help="run at --control-hz even though the bundle was trained at another rate")
    mode = g.add_mutually_exclusive_group()
    mode.add_argument("--async", dest="asynchronous", action="store_true", default=asynchronous_default,
                      help="compute the next chunk while the current one executes" + (" (default)" if asynchronous_default else ""))
    mode.add_argument("--sync", dest="asynchronous", action="store_false",
                      help="block on inference when the queue runs low" + ("" if asynchronous_default else " (default)"))
    g.add_argument("--merge", default="latest", choices=MERGE_MODES, help="how overlapping chunks combine")
    g.add_argument("--decay", type=float, default=0.1, help="weight decay of the weighted/ensemble merges")
    g.add_argument("--request-threshold", type=float, default=0.5,
                   help="request a new chunk when the queue falls to this fraction of a chunk")
    g.add_argument("--execute-steps", type=int, default=None, help="use at most this many steps of each chunk")
    s = parser.add_argument_group("safety")
    s.add_argument("--max-obs-age", type=float, default=0.5, help="hold when the observation is older (s)")
    s.add_argument("--max-stall", type=float, default=1.0, help="hold when no action for this long (s)")
    s.add_argument("--velocity-scale", type=float, default=None,
                   help=f"fraction of the joint velocity limits allowed (default 1 in the twin, "
                        f"{HARDWARE_VELOCITY_SCALE} on hardware)")


def runtime_config_from_args(args: argparse.Namespace) -> RuntimeConfig:
    try:
        return RuntimeConfig(
            device=args.device,
            dtype=args.dtype,
            cuda_graph=args.cuda_graph,
            vlm_compile=args.vlm_compile,
            prompt_bucket=args.prompt_bucket,
            control_hz=args.control_hz or 10.0,
            asynchronous=args.asynchronous,
            chunk=ChunkConfig(merge=args.merge, decay=args.decay, request_threshold=args.request_threshold,
                              execute_steps=args.execute_steps),
            safety=SafetyConfig(max_obs_age_s=args.max_obs_age, max_inference_stall_s=args.max_stall,
                                velocity_scale=args.velocity_scale or 1.0),
        )
    except ValueError as exc:
        raise SystemExit(f"bad runtime option: {exc}") from None


def resolve_control_rate(bundle_hz: float | None, requested_hz: float | None, override: bool,
                         where: str = "--control-hz", default_hz: float | None = None) -> float:
    """The control rate to run at: the bundle's, unless another one is asked for *and* overridden.

    A chunk is a sequence of control steps learned at the bundle's rate; played at another
    rate the arm moves faster or slower than it was shown, so a mismatch is refused by default.
    """
    if not requested_hz:
        if bundle_hz:
            return float(bundle_hz)
        if default_hz:
            return float(default_hz)
        raise ValueError(f"the bundle does not record its control rate: set {where}")
    if bundle_hz and abs(float(requested_hz) - float(bundle_hz)) > 1e-6 and not override:
        flag = "control_hz_override:=true" if where == "control_hz" else "--override-control-hz"
        raise ValueError(f"the bundle was trained at {float(bundle_hz):g} Hz but {where} asks for {float(requested_hz):g} "
                         f"Hz: its chunks would play {float(requested_hz) / float(bundle_hz):.2f}x as fast as learned. "
                         f"Leave {where} unset to run at {float(bundle_hz):g} Hz, or set {flag} to run at "
                         f"{float(requested_hz):g} Hz anyway")
    return float(requested_hz)


def with_policy_rate(runtime: RuntimeConfig, args: argparse.Namespace, policy) -> RuntimeConfig:
    """The bundle's control rate unless --control-hz was given (and, if it differs, overridden)."""
    try:
        rate = resolve_control_rate(getattr(policy, "control_hz", None), args.control_hz,
                                    getattr(args, "override_control_hz", False), default_hz=10.0)
    except ValueError as exc:
        raise SystemExit(f"bad runtime option: {exc}") from None
    return dataclasses.replace(runtime, control_hz=rate)
