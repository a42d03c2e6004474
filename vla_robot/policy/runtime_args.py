"""Command-line options shared by `vla-robot deploy` and `vla-robot eval` -> ``RuntimeConfig``."""

from __future__ import annotations

import argparse
import dataclasses

from vla_robot.policy.config import (COMPILE_MODES, DTYPES, GRAPH_MODES, MERGE_MODES, ChunkConfig, RuntimeConfig,
                                     SafetyConfig)


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
    s.add_argument("--velocity-scale", type=float, default=1.0, help="fraction of the joint velocity limits allowed")


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
                                velocity_scale=args.velocity_scale),
        )
    except ValueError as exc:
        raise SystemExit(f"bad runtime option: {exc}") from None


def with_policy_rate(runtime: RuntimeConfig, args: argparse.Namespace, policy) -> RuntimeConfig:
    """Use the bundle's control rate unless --control-hz was given: chunks are in control steps."""
    rate = getattr(policy, "control_hz", None)
    if args.control_hz is None and rate:
        return dataclasses.replace(runtime, control_hz=float(rate))
    return runtime
