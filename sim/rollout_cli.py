"""`vla-robot rollout`: run the scripted expert in the twin, save a video, print the metrics.

    vla-robot rollout --robot widowx250 --episodes 2 --out out/rollout

Writes ``rollout.mp4`` (third-person view, instruction overlaid) and ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sim import emoji as emoji_catalogue
from sim.config import ROBOTS, TASKS, TwinConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--robot", choices=ROBOTS, default="widowx250", help="arm to simulate (default: %(default)s)")
    parser.add_argument("--task", choices=TASKS, default="grinning_face", help="twin task (default: %(default)s)")
    parser.add_argument("--split", choices=emoji_catalogue.SPLITS, default="train", help="emoji split (default: %(default)s)")
    parser.add_argument("--episodes", type=int, default=2, help="number of episodes (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="episode i uses seed SEED+i (default: %(default)s)")
    parser.add_argument("--n-cards", type=int, default=4, help="cards on the table (default: %(default)s)")
    parser.add_argument("--width", type=int, default=640, help="video width (default: %(default)s)")
    parser.add_argument("--height", type=int, default=480, help="video height (default: %(default)s)")
    parser.add_argument("--quality", choices=("fast", "high"), default="high", help="render quality: high adds shadows and anti-aliasing (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("out/rollout"), help="output folder (default: %(default)s)")
    parser.add_argument("--no-video", action="store_true", help="only print metrics (fast)")


def _overlay(frame: np.ndarray, lines: list[str]) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    img = Image.fromarray(frame)
    draw = ImageDraw.Draw(img)
    size = max(12, frame.shape[0] // 24)
    try:
        font = ImageFont.truetype("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", size)
    except OSError:
        font = ImageFont.load_default()
    y = 4
    for line in lines:
        draw.rectangle([0, y - 2, frame.shape[1], y + size + 2], fill=(0, 0, 0))
        draw.text((6, y), line, fill=(255, 255, 255), font=font)
        y += size + 6
    return np.asarray(img)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from sim.expert import ScriptedExpert
    from sim.metrics import summarise
    from sim.robot import TwinRobot
    from sim.twin import Twin

    if args.episodes < 1:
        raise SystemExit(f"--episodes must be >= 1, got {args.episodes}")
    cameras = ("third_person",)
    config = TwinConfig(robot=args.robot, task=args.task, split=args.split, n_cards=args.n_cards, cameras=cameras,
                        image_size=(args.width, args.height), render_quality=args.quality, seed=args.seed)
    twin = Twin(config)
    robot = TwinRobot(twin)
    robot.connect()
    expert = ScriptedExpert(twin)
    args.out.mkdir(parents=True, exist_ok=True)
    writer = None
    video = args.out / "rollout.mp4"
    if not args.no_video:
        import imageio.v2 as imageio

        writer = imageio.get_writer(video, fps=config.control_rate_hz, codec="libx264", quality=7, macro_block_size=8)
    results = []
    start = time.perf_counter()
    for i in tqdm(range(args.episodes), desc=f"rollout {args.robot}/{args.task}", unit="ep"):
        info = twin.reset(args.seed + i)
        steps = 0
        while steps < config.max_steps and not expert.done:
            robot.send_joint_targets(expert.act(robot.read_state()))
            steps += 1
            if writer is not None:
                writer.append_data(_overlay(twin.render("third_person"), [f"ep {i}: {info['instruction']}", f"t={twin.sim_time:4.1f}s  {expert.phase}"]))
        robot.hold(3)
        result = twin.evaluate()
        result.update(episode=i, seed=args.seed + i, steps=steps)
        results.append(result)
        if writer is not None:
            verdict = "SUCCESS" if result["success"] else ("wrong card" if result["executed"] else "not executed")
            last = _overlay(twin.render("third_person"), [f"ep {i}: {info['instruction']}", verdict])
            for _ in range(int(config.control_rate_hz)):
                writer.append_data(last)
    if writer is not None:
        writer.close()
    summary = summarise(results)
    summary.update(robot=args.robot, task=args.task, split=args.split, wall_s=round(time.perf_counter() - start, 2),
                   clamps=robot.clamp_count)
    (args.out / "metrics.json").write_text(json.dumps({"summary": summary, "episodes": results}, indent=2, default=float))
    twin.close()
    print(f"{args.robot} {args.task} ({args.split}): {summary['episodes']} episodes  "
          f"Exe. SR {summary['exe_sr']:.2f}  Rec. SR {summary['rec_sr']:.2f}  SR {summary['sr']:.2f}  "
          f"({summary['wall_s']} s)")
    if writer is not None:
        print(f"video: {video}")
    print(f"metrics: {args.out / 'metrics.json'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.rollout_cli", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
