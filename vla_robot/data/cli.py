"""`vla-data`: inspect, check, view and convert episode stores.

Every STORE argument is a local path or an fsspec URL (memory://, s3://, gs://).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm


def _parse_episodes(text: str | None) -> list[int] | None:
    """'0,3,5-8' -> [0, 3, 5, 6, 7, 8]."""
    if not text:
        return None
    out: list[int] = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            out.extend(range(int(lo), int(hi) + 1))
        else:
            out.append(int(part))
    return out


def cmd_info(args: argparse.Namespace) -> int:
    from vla_robot.data.store import EpisodeStore
    from vla_robot.data.tools import summary

    info = summary(EpisodeStore.open(args.store))
    if args.json:
        print(json.dumps(info, indent=2, ensure_ascii=False))
        return 0
    print(f"store        {info['url']} (format v{info['format_version']})")
    print(f"robot        {info['robot']} @ {info['control_rate_hz']:g} Hz")
    print(f"episodes     {info['episodes']} ({info['successes']} successful, {info['dropped_episodes']} dropped)")
    print(f"frames       {info['frames']}")
    print(
        f"duration     {info['duration_total_s']:.1f} s total, {info['duration_mean_s']:.1f} s mean "
        f"({info['duration_min_s']:.1f}..{info['duration_max_s']:.1f})"
    )
    for cam in info["cameras"]:
        print(f"camera       {cam}")
    print(
        f"size         {info['bytes_on_disk'] / 1e6:.2f} MB on disk, {info['bytes_raw'] / 1e6:.2f} MB raw "
        f"(compression {info['compression_ratio']:.1f}x)"
    )
    for text in info["instructions"][:10]:
        print(f"instruction  {text}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    from vla_robot.data.store import EpisodeStore
    from vla_robot.data.tools import validate

    store = EpisodeStore.open(args.store)
    report = validate(store, decode_images=args.decode_images, progress=not args.quiet)
    for w in report.warnings:
        print(f"warning: {w}")
    for p in report.problems:
        print(f"problem: {p}")
    print(f"{store.num_episodes} episodes checked: {len(report.problems)} problems, {len(report.warnings)} warnings")
    return 0 if report.ok and not (args.strict and report.warnings) else 1


def cmd_view(args: argparse.Namespace) -> int:
    from vla_robot.data.store import EpisodeStore
    from vla_robot.data.viz import contact_sheet, write_episode_video

    store = EpisodeStore.open(args.store)
    episodes = _parse_episodes(args.episodes) or store.episode_indices()[: args.max_episodes]
    out = Path(args.out)
    for i in tqdm(episodes, desc="view"):
        print(write_episode_video(store, i, out / f"episode_{i:05d}.{args.format}"))
    print(contact_sheet(store, out / "contact_sheet.png", episodes=episodes))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from vla_robot.data.store import EpisodeStore
    from vla_robot.data.viz import plot_episode

    store = EpisodeStore.open(args.store)
    out = Path(args.out)
    for i in _parse_episodes(args.episodes) or [0]:
        print(plot_episode(store, i, out / f"episode_{i:05d}.png" if out.suffix != ".png" else out))
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from vla_robot.data.store import EpisodeStore
    from vla_robot.data.tools import merge

    sources = [EpisodeStore.open(s) for s in args.sources]
    if Path(args.dest).exists() or "://" in args.dest:
        try:
            dst = EpisodeStore.open(args.dest, mode="a")
        except Exception:  # noqa: BLE001 - fall back to creating it
            dst = EpisodeStore.create(args.dest, sources[0].schema, shard_frames=sources[0].shard_frames)
    else:
        dst = EpisodeStore.create(args.dest, sources[0].schema, shard_frames=sources[0].shard_frames)
    n = merge(dst, sources)
    print(f"appended {n} episodes to {dst.url} (now {dst.num_episodes})")
    return 0


def cmd_split(args: argparse.Namespace) -> int:
    from vla_robot.data.store import EpisodeStore
    from vla_robot.data.tools import split

    parts = split(EpisodeStore.open(args.store), args.out, val_fraction=args.val_fraction, seed=args.seed)
    for name, store in parts.items():
        print(f"{name}: {store.num_episodes} episodes -> {store.url}")
    return 0


def cmd_drop(args: argparse.Namespace) -> int:
    from vla_robot.data.store import EpisodeStore
    from vla_robot.data.tools import rewrite

    with EpisodeStore.open(args.store, mode="a") as store:
        for i in _parse_episodes(args.episodes) or []:
            store.drop_episode(i)
            print(f"episode {i} marked dropped")
        if args.rewrite:
            dst = rewrite(store, args.rewrite)
            print(f"wrote {dst.num_episodes} episodes to {dst.url}")
    return 0


def cmd_to_lerobot(args: argparse.Namespace) -> int:
    from vla_robot.data.lerobot_io import to_lerobot
    from vla_robot.data.store import EpisodeStore

    out = to_lerobot(
        EpisodeStore.open(args.store),
        args.out,
        crf=args.crf,
        overwrite=args.overwrite,
        episodes=_parse_episodes(args.episodes),
    )
    print(f"LeRobotDataset v3 written to {out}")
    return 0


def cmd_from_lerobot(args: argparse.Namespace) -> int:
    from vla_robot.data.lerobot_io import from_lerobot

    store = from_lerobot(args.src, args.store, encoding=args.encoding, quality=args.quality, overwrite=args.overwrite)
    print(f"imported {store.num_episodes} episodes into {store.url}")
    return 0


def cmd_from_rosbag(args: argparse.Namespace) -> int:
    from vla_robot.recorder.rosbag_import import BagImporter
    from vla_robot.recorder.rosbag_mapping import BagMapping

    mapping = BagMapping.load(args.config)
    report = BagImporter(mapping, args.out, progress=not args.quiet).run(args.bags)
    for e in report.saved:
        print(f"episode {e['index']}: {e['steps']} steps, {'success' if e['success'] else 'failure'}, "
              f"{e['dropped_steps']} dropped, {e['instruction']!r} ({Path(e['bag']).name} @ {e['bag_time']:.2f})")
    for e in report.discarded:
        print(f"discarded: {e['steps']} steps from {Path(e['bag']).name} @ {e['bag_time']:.2f}: {e['reason']}")
    rejected = {k: v for k, v in report.rejected.items() if v}
    if rejected:
        print(f"malformed messages skipped: {rejected}")
    for f in report.failed:
        where = f" (episode starting at {f['episode']:.2f} discarded)" if f["episode"] is not None else ""
        print(f"FAILED {f['bag']}{where}: {f['reason']}", file=sys.stderr)
    print(f"{len(report.saved)} episodes imported into {args.out}"
          + (f"; {len(report.failed)} bag(s) failed, their good episodes kept" if report.failed else ""))
    return 0 if report.ok else 1


ROSBAG_EPILOG = """mapping file (YAML), e.g.:
  robot: widowx250                       # widowx250 | so100: joint names and order
  control_rate_hz: 30
  joint_states: /joint_states            # sensor_msgs/JointState
  action: /arm/applied_command           # sensor_msgs/JointState or trajectory_msgs/JointTrajectory
  cameras:
    front: {topic: /front/image_raw, depth: /front/depth/image_raw, info: /front/camera_info}
    wrist: {topic: /wrist/image_raw/compressed}     # sensor_msgs/CompressedImage (JPEG/PNG)
  episodes:
    split: bag            # bag (one per bag) | marker | instruction | gap
    marker_topic: /episode_marker        # split: marker; std_msgs/String start, success, failure, stop, discard
    instruction_topic: /instruction      # std_msgs/String; split: instruction starts an episode at each message
    gap_s: 2.0            # split: gap; joint states silent this long end an episode
    success: true         # label of episodes no marker labelled
  instruction: put the cube on the grinning face   # until an instruction topic speaks
  stamps: header          # header (as the recorder aligns) | receive (the bag's log time)
  types: {my_msgs/msg/Marker: msg/Marker.msg}      # definitions a bag lacks

  max_skew_s: 0.05        # optional, as the recorder's parameters of the same name
  max_wait_s: 1.0

Streams are aligned by the recorder's own code (align_samples): markers are the operator's start and
save, and a bag gives the store a live recording of the same streams gives. Exit status 1 when a bag
or an episode was corrupt (it is named; every good episode is kept), 2 on a mapping or bag error
(nothing written)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vla-data",
        description="Inspect, validate, view and convert vla-robot episode stores (zarr v3, ReplayBuffer layout). "
        "STORE is a local path or an fsspec URL such as memory://x or s3://bucket/demos.zarr.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("info", help="counts, durations, cameras, size on disk, compression ratio")
    p.add_argument("store")
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "validate", help="check timestamps, frame counts, NaNs, dropped frames, joint limits; exit 1 on problems"
    )
    p.add_argument("store")
    p.add_argument("--decode-images", action="store_true", help="decode every image frame (slow) instead of first/last")
    p.add_argument("--strict", action="store_true", help="also fail on warnings")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("view", help="MP4/GIF per episode with the instruction overlaid, plus contact_sheet.png")
    p.add_argument("store")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--episodes", help="e.g. '0,3,5-8' (default: the first --max-episodes)")
    p.add_argument("--max-episodes", type=int, default=8)
    p.add_argument("--format", choices=("mp4", "gif"), default="mp4")
    p.set_defaults(func=cmd_view)

    p = sub.add_parser("plot", help="joint and action trajectories of episodes as PNG")
    p.add_argument("store")
    p.add_argument("--out", required=True, help="output folder (or a .png path for one episode)")
    p.add_argument("--episodes", default="0", help="e.g. '0,3,5-8'")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser(
        "merge", help="append the episodes of SOURCES to DEST (DEST is created if missing, never rewritten)"
    )
    p.add_argument("dest")
    p.add_argument("sources", nargs="+")
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("split", help="write OUT/train.zarr and OUT/val.zarr with VLADataset's episode-level split")
    p.add_argument("store")
    p.add_argument("--out", required=True)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_split)

    p = sub.add_parser("drop-episode", help="mark episodes dropped (no rewrite); --rewrite OUT writes a compact copy")
    p.add_argument("store")
    p.add_argument("episodes", help="e.g. '3' or '0,3,5-8'")
    p.add_argument("--rewrite", metavar="OUT", help="also write the remaining episodes to a new store")
    p.set_defaults(func=cmd_drop)

    p = sub.add_parser("to-lerobot", help="export to a LeRobotDataset v3 folder (parquet + MP4)")
    p.add_argument("store")
    p.add_argument("--out", required=True)
    p.add_argument("--episodes", help="e.g. '0,3,5-8' (default: all non-dropped)")
    p.add_argument("--crf", type=int, default=18, help="H.264 quality (lower = better, bigger)")
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_to_lerobot)

    p = sub.add_parser("from-lerobot", help="import a local LeRobotDataset v3 folder into a new store")
    p.add_argument("src")
    p.add_argument("store")
    p.add_argument("--encoding", choices=("jpeg", "jpegxl", "png"), default="jpeg")
    p.add_argument("--quality", type=int, default=95)
    p.add_argument("--overwrite", action="store_true")
    p.set_defaults(func=cmd_from_lerobot)

    p = sub.add_parser("from-rosbag", help="import ROS 2 bags (mcap, sqlite3) into a store, aligned like the recorder",
                       description="Convert ROS 2 bags into episodes (pure Python; no ROS install needed).",
                       epilog=ROSBAG_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bags", nargs="+", metavar="BAG", help="a rosbag2 folder (with metadata.yaml) or a .mcap / .db3 file")
    p.add_argument("--config", required=True, metavar="MAPPING.yaml", help="which topics are which streams (see below)")
    p.add_argument("--out", required=True, metavar="STORE", help="episode store; appended to when it exists")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_from_rosbag)
    return parser


def main(argv: list[str] | None = None) -> int:
    from vla_robot.data.errors import StoreError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (StoreError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"vla-data {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
