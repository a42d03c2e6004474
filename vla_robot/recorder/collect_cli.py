"""`vla-robot collect`: record demonstrations through the ROS 2 nodes.

``--robot sim`` composes the twin, its cameras, the scripted-expert teleop and the
recorder in this process (rclpy executors, real DDS on loopback) and records N episodes.
For a real arm, use ``ros2 launch vla_robot_bringup collect.launch.py`` (docs/collect.md).
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", default="sim", choices=["sim", "widowx", "so100"],
                        help="sim records on the twin in-process; real arms use ros2 launch (see docs/collect.md)")
    parser.add_argument("--arm", default="widowx250", choices=["widowx250", "so100"], help="twin arm model (sim)")
    parser.add_argument("--task", default="grinning_face", choices=["grinning_face", "reach", "push"])
    parser.add_argument("--n-cards", type=int, default=4, help="emoji cards on the table (sim)")
    parser.add_argument("--split", default="train", choices=["train", "val"], help="emoji split the cards come from (sim)")
    parser.add_argument("--layout-seed", type=int, default=None,
                        help="fix the card/cube layout of every episode (only the emojis change); default: random")
    parser.add_argument("--episodes", type=int, default=5, help="episodes to record")
    parser.add_argument("--out", required=True, help="episode store (path or fsspec URL); appended to if it exists")
    parser.add_argument("--cameras", default="third_person,wrist", help="comma-separated twin cameras")
    parser.add_argument("--size", default="128x128", help="image WIDTHxHEIGHT (e.g. 640x480 for full size)")
    parser.add_argument("--rate", type=float, default=10.0, help="control rate in Hz")
    parser.add_argument("--speed", type=float, default=2.0, help="sim seconds per wall second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--encoding", default="jpeg", choices=["jpeg", "jpegxl", "png"])
    parser.add_argument("--quality", type=int, default=90)
    parser.add_argument("--max-steps", type=int, default=150, help="cut an episode after this many control steps")
    parser.add_argument("--preview", default="", help="write a live JPEG preview to this path")
    parser.add_argument("--console", metavar="[HOST:]PORT", default=None,
                        help="serve the recording console in a browser, e.g. --console 8080 (http://127.0.0.1:8080/); "
                             "another HOST needs --console-token")
    parser.add_argument("--console-token", default="", help="console access token (or set $VLA_CONSOLE_TOKEN)")
    parser.add_argument("--manual", action="store_true",
                        help="sim: the operator starts and saves episodes from the console while the scripted expert "
                             "drives the twin; runs until Ctrl-C (needs --console)")


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SystemExit(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 128x128 or 640x480") from None
    if not (16 <= w <= 2048 and 16 <= h <= 2048):
        raise SystemExit(f"--size {text!r}: width and height must be in 16..2048")
    return w, h


def parse_console(text: str | None) -> tuple[str, int] | None:
    """``8080`` -> (127.0.0.1, 8080); ``0.0.0.0:8080`` -> (0.0.0.0, 8080); None -> None."""
    if text is None:
        return None
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        raise SystemExit(f"--console {text!r}: expected [HOST:]PORT, e.g. 8080 or 0.0.0.0:8080") from None
    return (host.strip("[]") or "127.0.0.1"), number


def run(args: argparse.Namespace) -> int:
    if args.robot != "sim":
        print(f"--robot {args.robot}: a real arm records through ROS 2 launch files:\n"
              f"  ros2 launch vla_robot_bringup collect.launch.py robot:={args.robot} store:={args.out}\n"
              "see docs/collect.md", file=sys.stderr)
        return 2
    if args.episodes < 1:
        raise SystemExit("--episodes must be >= 1")
    from tqdm import tqdm

    from vla_robot.ros.sim_stack import SimStack, SimStackConfig

    width, height = parse_size(args.size)
    console = parse_console(args.console)
    if args.manual and console is None:
        raise SystemExit("--manual: episodes are started from the browser console; add --console 8080")
    config = SimStackConfig(store=args.out, robot=args.arm, task=args.task, n_cards=args.n_cards, split=args.split, layout_seed=args.layout_seed,
                            cameras=tuple(c for c in args.cameras.split(",") if c), width=width, height=height,
                            control_rate_hz=args.rate, rate_factor=args.speed, seed=args.seed,
                            encoding=args.encoding, quality=args.quality, max_steps=args.max_steps,
                            preview_path=args.preview,
                            console_port=None if console is None else console[1],
                            console_host="127.0.0.1" if console is None else console[0],
                            console_token=args.console_token)
    if args.manual:
        return run_manual(config)
    bar = tqdm(total=args.episodes, desc="episodes", unit="ep")

    def progress(result: dict) -> None:
        bar.update(1)
        bar.set_postfix(success=result["success"])
        tqdm.write(f"  {result['message']}: {result['instruction']!r}")

    with SimStack(config) as stack:
        if stack.console is not None:
            print(f"recording console: {stack.console.url}")
        results = stack.record_episodes(args.episodes, progress=progress)
        status = stack.recorder.status()
        rerecorded = stack.rerecorded
    bar.close()
    ok = sum(r["success"] for r in results)
    print(f"recorded {len(results)} episodes into {args.out} ({ok} successful); "
          f"gaps {status.get('gaps')}, rejected {status.get('rejected')}, lag p99 {status.get('lag_p99_s', 0) * 1000:.0f} ms"
          + (f"; {rerecorded} empty episode(s) discarded and re-recorded" if rerecorded else ""))
    return 0


def run_manual(config) -> int:
    """The operator starts and saves episodes from the console; the scripted expert drives the twin
    while an episode records, and the twin resets after every save or discard."""
    import signal
    import threading

    from vla_robot.ros.sim_stack import SimStack

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with SimStack(config) as stack:
        print(f"recording console: {stack.console.url}  (Ctrl-C to quit)", flush=True)
        stack.drive_while_recording(stop)
    return 0
