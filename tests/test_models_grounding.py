"""The grounding question: the instruction's target asked about in the prior's words, in training and deployment."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from models_fixtures import robot_batch, tiny_vla
from sim.emoji import TEMPLATES, catalogue
from sim.tasks import PUSH_DIRECTIONS, PUSH_TEMPLATES, REACH_TEMPLATES
from vla_robot.models.bundle import load_bundle, save_bundle
from vla_robot.models.config import VLAConfig
from vla_robot.models.grounding import instruction_target, with_grounding_question
from vla_robot.models.tiny import make_tiny_backbone


@pytest.mark.parametrize("template", TEMPLATES + REACH_TEMPLATES + PUSH_TEMPLATES[:3])
def test_every_twin_template_names_its_target(template):
    """Every emoji name, "with" and "of" included, comes back whole from every instruction the twin writes."""
    for emoji in catalogue().values():
        assert instruction_target(template.format(name=emoji.name)) == emoji.name


@pytest.mark.parametrize("template", PUSH_TEMPLATES)
def test_a_direction_is_not_a_target(template):
    """The twin's push instructions name a direction; asking "where is the left?" would erase the verb,
    so every mode passes them through unchanged."""
    for direction in PUSH_DIRECTIONS:
        text = template.format(name=direction)
        assert instruction_target(text) is None
        assert with_grounding_question(text, "only") == with_grounding_question(text, "append") == text
    assert instruction_target("put the cube on the card at the left side") is None


def test_modes_append_replace_or_keep_and_leave_untargeted_text_alone():
    text = "put  the cube on the face with tears of joy"
    assert with_grounding_question(text, "off") == "put the cube on the face with tears of joy"
    assert with_grounding_question(text, "append") == ("put the cube on the face with tears of joy "
                                                       "where is the face with tears of joy?")
    assert with_grounding_question(text, "only") == "where is the face with tears of joy?"
    assert instruction_target("pick up the cube at the left and put it on the frog") == "frog"
    for untargeted in ("push the block left", "where is the cube?", "which emoji is at the left?"):
        assert with_grounding_question(untargeted, "only") == untargeted
    with pytest.raises(ValueError, match="mode 'ask'; allowed: off, append, only"):
        with_grounding_question(text, "ask")
    with pytest.raises(ValueError, match="model.grounding_question 'yes' is not supported"):
        VLAConfig(family="paligemma", backbone="x", action_dim=7, horizon=4, grounding_question="yes")


def test_the_model_reads_the_question_and_the_bundle_keeps_the_mode(tmp_path, caplog):
    """"only" feeds the backbone exactly the prior's question; a reloaded bundle asks it the same way,
    and the deployed policy says when an operator's instruction names nothing to ask about."""
    from vla_robot.policy.types import Observation
    from vla_robot.policy.vla_policy import VLAPolicy

    model = tiny_vla(make_tiny_backbone("paligemma", tmp_path / "bb"), "paligemma").eval()
    b = robot_batch(model)
    ids = lambda text: model.preprocess(b["images"], [text] * 2)["input_ids"]  # noqa: E731
    plain, question = ids("put the cube on the cat"), ids("where is the cat?")
    assert not torch.equal(plain, question)
    model.config.grounding_question = model.preprocessor.grounding_question = "only"
    assert torch.equal(ids("put the cube on the cat"), question)
    model.config.grounding_question = model.preprocessor.grounding_question = "append"
    appended = ids("put the cube on the cat")
    words = model.processor.tokenizer.decode(appended[0], skip_special_tokens=True).split()
    assert words[-11:] == "put the cube on the cat where is the cat ?".split()
    path = save_bundle(model, tmp_path / "bundle", action_space={"type": "joint_position"}, provenance={})
    loaded, info = load_bundle(path)
    assert loaded.config.grounding_question == "append"
    assert torch.equal(loaded.preprocess(b["images"], ["put the cube on the cat"] * 2)["input_ids"], appended)
    policy = VLAPolicy(loaded, info)
    assert policy.describe()["grounding_question"] == "append"
    with caplog.at_level("WARNING", logger="vla_robot.policy.vla_policy"):
        policy.reset("put the cube on the cat")
        assert not caplog.records
        policy.reset("push the block left")
        assert "'push the block left' names no target" in caplog.text and "grounding_question=append" in caplog.text
        caplog.clear()
        policy.reset("push the block left")  # once per instruction, not once per episode
        assert not caplog.records
        # an instruction that arrives inside an observation, with no reset, is checked the same way
        h, w = (int(x) for x in b["images"][policy.camera_names[0]].shape[-2:])
        obs = Observation(images={c: np.zeros((h, w, 3), np.uint8) for c in policy.camera_names},
                          state=np.zeros(max(policy.state_dim, 1)), instruction="slide the block to the right")
        policy.infer(obs)
        policy.infer(obs)
    assert [r.getMessage().split(" names")[0] for r in caplog.records] == ["instruction 'slide the block to the right'"]
