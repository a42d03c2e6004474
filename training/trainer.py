"""The trainer: one call from a validated `TrainConfig` to a policy bundle.

    bundle_dir = train(load_config("my.yaml", ["steps=2000"]))

Phases: every strategy runs one phase, except `staged`, which runs stage 1 (LoRA on the
pretraining mixture, which may hold other robots' data: training/embodiment.py) → merge →
stage 2 (fresh LoRA on the target stores). Each phase writes checkpoints under its own
directory and resumes from the newest one (training/loop.py).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

from training.checkpoint import latest_checkpoint, load_trainable
from training.config import ConfigError, StoreRef, TrainConfig, save_config
from training.embodiment import EmbodimentMap, action_layout, check_compatible, state_layout
from training.loop import Phase, PhaseRunner, seed_everything
from training.strategies import apply_strategy, merge_lora
from vla_robot.models.bundle import save_bundle
from vla_robot.models.config import VLAConfig
from vla_robot.models.normalization import check_stats
from vla_robot.models.vla import VLAModel, prompt_report


# ------------------------------------------------------------------------ setup
def open_stores(refs: list[StoreRef]):
    from vla_robot.data.store import EpisodeStore

    stores = []
    for ref in refs:
        try:
            stores.append(EpisodeStore.open(ref.url))
        except Exception as exc:  # noqa: BLE001 - name the config entry
            raise ConfigError(f"cannot open store {ref.url!r}: {exc}") from exc
    return stores


def resolve_model_config(cfg: TrainConfig, schema) -> VLAConfig:
    m = cfg.model
    cameras = tuple(cfg.data.cameras) or schema.camera_names
    grip = action_layout(schema, m.gripper_dims).gripper
    crop = cfg.data.augment.crop_scale if cfg.data.augment.enabled else 1.0
    return VLAConfig(family=m.family, backbone=m.backbone, action_dim=schema.action_dim, horizon=m.horizon,
                     state_dim=schema.state_dim if m.use_proprio else 0, cameras=cameras, image_size=m.image_size,
                     num_action_queries=m.num_action_queries, head_hidden=m.head_hidden, head_layers=m.head_layers,
                     target=m.target, gripper_dims=tuple(grip), num_bins=m.num_bins,
                     goal_loss_weight=m.goal_loss_weight, trust_remote_code=m.trust_remote_code, crop_scale=crop,
                     grounding_question=m.grounding_question)


def check_data(cfg: TrainConfig, refs: list[StoreRef], stores, where: str, same_robot: bool = True) -> None:
    """Fail before compute when chunks are longer than the episodes, cameras are missing or dims differ."""
    first = stores[0].schema
    cameras = list(cfg.data.cameras) or list(first.camera_names)
    for i, (ref, store) in enumerate(zip(refs, stores)):
        lengths = [store.episode_length(e) for e in store.episode_indices()]
        if not lengths:
            raise ConfigError(f"{where}: store {store.url} has no committed episodes")
        if cfg.model.horizon > max(lengths):
            raise ConfigError(f"model.horizon={cfg.model.horizon} is longer than the longest episode "
                              f"({max(lengths)} frames) in {store.url}: every chunk would be mostly padding; "
                              "lower the horizon")
        # shorter episodes are fine: their chunks are padded and the pad steps masked out of the loss
        wanted = list(ref.cameras) or cameras
        missing = [c for c in wanted if c not in store.schema.camera_names]
        if missing:
            hint = "" if ref.cameras else (f"; name its cameras in the model's order with {where}[{i}].cameras="
                                           f"[...] (model cameras: {cameras})")
            raise ConfigError(f"{where}[{i}]: cameras {missing} not in {store.url}; it has "
                              f"{list(store.schema.camera_names)}{hint}")
        if same_robot and (store.schema.action_dim, store.schema.state_dim) != (first.action_dim, first.state_dim):
            raise ConfigError(f"{where}: {store.url} has action/state dims {store.schema.action_dim}/"
                              f"{store.schema.state_dim}, {stores[0].url} has {first.action_dim}/{first.state_dim}; "
                              "the target stores must come from one robot (other robots belong in "
                              "strategy.stage1.stores)")


def load_stats(cfg: TrainConfig, stores) -> dict:
    if cfg.data.stats_path:
        path = Path(cfg.data.stats_path)
        if not path.is_file():
            raise ConfigError(f"data.stats_path {path} does not exist")
        return json.loads(path.read_text())
    if len(stores) == 1:
        return stores[0].stats()
    from vla_robot.data.stats import compute_stats

    cols = {k: np.concatenate([s.read(k, i) for s in stores for i in s.episode_indices()]) for k in ("state", "action")}
    return compute_stats(cols)


def stage1_maps(cfg: TrainConfig, schema, model_cfg: VLAConfig, stores) -> list[EmbodimentMap]:
    """Each stage-1 store normalised with its own statistics and mapped into the target layout."""
    target_action = action_layout(schema, cfg.model.gripper_dims)
    target_state = state_layout(schema) if model_cfg.state_dim else None
    maps = []
    for i, store in enumerate(stores):
        where = f"strategy.stage1.stores[{i}] ({store.url}, robot {store.schema.robot})"
        check_compatible(schema, store.schema, where)
        maps.append(EmbodimentMap(store.schema, store.stats(), target_action, target_state, where,
                                  use_state=model_cfg.state_dim > 0))
    return maps


def build_model(cfg: TrainConfig, model_cfg: VLAConfig, stats: dict) -> VLAModel:
    """The backbone in float32 (master weights; bf16 runs under autocast), or bf16 for bf16_pure."""
    from vla_robot.models.processors import apply_image_processor_settings

    check_stats(stats, model_cfg.action_dim, model_cfg.state_dim)
    dtype = torch.bfloat16 if cfg.precision == "bf16_pure" else torch.float32
    model = VLAModel.from_pretrained_backbone(model_cfg, stats, dtype=dtype)
    if cfg.model.image_processor:
        try:
            apply_image_processor_settings(model.processor, cfg.model.image_processor)
        except ValueError as exc:
            raise ConfigError(str(exc)) from exc
    return model


def check_prompt(cfg: TrainConfig, model: VLAModel, print_fn=print) -> dict:
    """Report the tokens one observation costs and refuse a processor that inflates frames."""
    report = prompt_report(model)
    per_cam, limit = report["image_tokens_per_camera"], cfg.model.max_image_tokens
    print_fn(f"[model] {per_cam} image tokens per camera x {report['cameras']} camera(s); prompt "
             f"{report['prompt_tokens']} tokens, {report['sequence_tokens']} with the action tokens")
    if limit and per_cam > limit:
        hint = {"idefics3": "set model.image_processor={do_image_splitting: false} (one tile per frame)",
                "qwen2_vl": "lower model.image_processor.max_pixels (tokens = pixels / 28^2)",
                "qwen2_5_vl": "lower model.image_processor.max_pixels (tokens = pixels / 28^2)",
                "paligemma": "use a lower-resolution checkpoint (224 px: 256 tokens)"}.get(cfg.model.family, "")
        raise ConfigError(f"the {cfg.model.family} processor turns one {cfg.model.image_size} px camera frame into "
                          f"{per_cam} tokens (model.max_image_tokens={limit}): every step would attend over "
                          f"{report['sequence_tokens']} tokens. {hint}; or raise model.max_image_tokens if you "
                          "mean it")
    return report


# ------------------------------------------------------------------------ whole run
def prepare(cfg: TrainConfig):
    """Every check that needs no compute: stores, chunk length, stats, model config, stage-1 maps."""
    cfg.validate()
    target_stores = open_stores(cfg.data.stores)
    check_data(cfg, cfg.data.stores, target_stores, "data.stores")
    schema = target_stores[0].schema
    model_cfg = resolve_model_config(cfg, schema)
    if cfg.strategy.name == "staged" and cfg.strategy.stage1.stores:
        s1 = open_stores(cfg.strategy.stage1.stores)
        check_data(cfg, cfg.strategy.stage1.stores, s1, "strategy.stage1.stores", same_robot=False)
        stage1_maps(cfg, schema, model_cfg, s1)
    stats = load_stats(cfg, target_stores)
    check_stats(stats, model_cfg.action_dim, model_cfg.state_dim)
    return schema, model_cfg, stats, target_stores


def run_phase(cfg: TrainConfig, model: VLAModel, phase: Phase, vqa, rebuild) -> VLAModel | None:
    """Train one phase; returns the unwrapped model (rebuilt from the final checkpoint after FSDP)."""
    runner = PhaseRunner(cfg, model, phase, vqa)
    runner.run()
    trained = runner.release()
    del runner
    if trained is None and len(phase.history) >= phase.steps:
        trained = rebuild()
    return trained


def train(cfg: TrainConfig) -> Path:
    """Train according to `cfg` and write `<out_dir>/bundle`; returns the bundle path."""
    from training.distributed import process_state
    from training.export import rebuild_model

    schema, model_cfg, stats, target_stores = prepare(cfg)
    state = process_state()
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if state.is_main_process:
        save_config(cfg, out / "config.yaml")
    seed_everything(cfg.seed)
    model = build_model(cfg, model_cfg, stats)
    check_prompt(cfg, model, state.print)
    vqa = vqa_samples(cfg, model_cfg)
    phases: list[Phase] = []
    t0 = time.time()
    if cfg.strategy.name == "staged":
        s1 = cfg.strategy.stage1
        apply_strategy(model, "staged", s1.lora)
        maps = stage1_maps(cfg, schema, model_cfg, open_stores(s1.stores)) if s1.stores else None
        stage1 = Phase("stage1", s1.stores, s1.steps, out / "stage1", maps=maps)
        if s1.checkpoint:
            load_trainable(Path(s1.checkpoint), model)
            state.print(f"[stage1] starting stage 2 from stage-1 checkpoint {s1.checkpoint}")
        else:
            model = run_phase(cfg, model, stage1, vqa, lambda: rebuild_model(cfg, ("stage1",)))
            phases.append(stage1)
            if model is None or len(stage1.history) < stage1.steps:  # stopped early (stop_after)
                return out
        merge_lora(model)
        seed_everything(cfg.seed + 1)  # stage 2 starts the same whether stage 1 ran now or was loaded
        apply_strategy(model, "staged", cfg.strategy.lora)
        stage2 = Phase("stage2", cfg.data.stores, cfg.steps, out / "stage2")
        model = run_phase(cfg, model, stage2, vqa, lambda: rebuild_model(cfg, ("stage1", "stage2")))
        phases.append(stage2)
    else:
        apply_strategy(model, cfg.strategy.name, cfg.strategy.lora)
        main = Phase("train", cfg.data.stores, cfg.steps, out)
        model = run_phase(cfg, model, main, vqa, lambda: rebuild_model(cfg, ("train",)))
        phases.append(main)
    if model is None or any(len(p.history) < p.steps for p in phases):
        return out
    history = {p.name: p.history for p in phases}
    bundle = out / "bundle"
    state.wait_for_everyone()
    if not state.is_main_process:
        return bundle
    bundle = save_bundle(model, bundle, action_space=action_space(schema), merge=cfg.merge_lora,
                         provenance=provenance(cfg, target_stores, history, time.time() - t0),
                         scene=training_scene(target_stores))
    from training.plots import plot_curves

    png = plot_curves(history, out / "curves.png")
    print(f"bundle: {bundle}\ntraining curves: {png}")
    return bundle


def vqa_samples(cfg: TrainConfig, model_cfg: VLAConfig) -> list[dict] | None:
    if cfg.vqa.ratio <= 0:
        return None
    from training.vqa import generate_twin_vqa, load_jsonl_vqa

    if cfg.vqa.source == "twin":
        return generate_twin_vqa(cfg.vqa.num_samples, image_size=model_cfg.image_size, robot=cfg.vqa.robot,
                                 seed=cfg.vqa.seed, n_cards=cfg.vqa.n_cards or None,
                                 layout_seed=None if cfg.vqa.layout_seed < 0 else cfg.vqa.layout_seed,
                                 questions=cfg.vqa.questions)
    return load_jsonl_vqa(cfg.vqa.source)


def training_scene(stores) -> dict | None:
    """The scene every target store was recorded in (``schema.extra["scene"]``), or None when a
    store has none or they differ: then `vla-robot eval`/`deploy` fall back to their own defaults."""
    scenes = [store.schema.extra.get("scene") for store in stores]
    if not scenes or any(s is None for s in scenes) or any(s != scenes[0] for s in scenes[1:]):
        if len({json.dumps(s, sort_keys=True) for s in scenes}) > 1:
            print(f"[bundle] the target stores were recorded in different scenes; the bundle names none: {scenes}")
        return None
    return dict(scenes[0])


def action_space(schema) -> dict:
    return {**schema.action_space, "robot": schema.robot, "joint_names": list(schema.joint_names),
            "control_rate_hz": schema.control_rate_hz, "state_dim": schema.state_dim,
            "action_dim": schema.action_dim}


def provenance(cfg: TrainConfig, stores, history: dict, seconds: float) -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                                cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    last = {name: (h[-1] if h else {}) for name, h in history.items()}
    return {"git_commit": commit, "train_config": cfg.to_dict(), "train_seconds": round(seconds, 1),
            "stores": [{"url": s.url, "episodes": s.num_episodes, "frames": s.num_frames} for s in stores],
            "final_metrics": last, "torch": torch.__version__}


__all__ = ["train", "prepare", "build_model", "check_prompt", "latest_checkpoint"]
