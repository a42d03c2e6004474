"""The backbone's own grounding question for a robot instruction: "where is the X?".

Why: the demo's prior answers "where is the X?" on twin renders for held-out emojis 96 % of the
time, but "put the cube on the X" (answer left/right) only at chance. After stage 2 the policy's
choice of card followed the backbone's answer to the prompt the action queries read: 81 % on
held-out emojis, against a validation Rec. SR of 78 % (docs/demo.md, stop 22). Asked in the
prior's words ("only"), the same recipe recognised held-out emojis 87-93 % of the time over three
training seeds, and executed 93-96 % instead of 70-86 %.

Modes: "off" keeps the instruction; "append" adds the question after it; "only" replaces it
by the question (single-task data, where the target is all the instruction says). An
instruction that names no target ("push the block left") is left as it is in every mode, and so is
one whose goal is a direction ("push the cube to the left"): "where is the left?" would drop the
verb and ask the backbone about no object.
"""

from __future__ import annotations

import re

GROUNDING_MODES = ("off", "append", "only")

# "... on the X", "onto the X card", "to the card with the X", "above the X card", "the X emoji";
# the last such phrase wins: "pick the cube at the left and put it on the frog" -> "frog"
_TARGET = re.compile(
    r"^.*\b(?:on|onto|to|towards|above|over|at|for)\s+the\s+(?:card\s+with\s+the\s+)?"
    r"(?P<target>[^?.!,]+?)(?:\s+(?:card|emoji))?\s*[.!]?\s*$",
    re.IGNORECASE,
)


# goals that are places, not objects: "push the cube to the left" has no object to ask about
_DIRECTIONS = frozenset({"left", "right", "front", "back", "middle", "centre", "center", "top", "bottom",
                         "side", "edge", "left side", "right side", "far side", "near side"})


def instruction_target(instruction: str) -> str | None:
    """The object an instruction names as its goal ("put the cube on the cat" → "cat"), or None
    (no goal phrase, or a direction: "push the cube to the left")."""
    match = _TARGET.match(" ".join(instruction.split()))
    if not match or match.group("target").lower() in _DIRECTIONS:
        return None
    return match.group("target")


def with_grounding_question(instruction: str, mode: str) -> str:
    """`instruction` in `mode` (see `GROUNDING_MODES`), whitespace normalised."""
    if mode not in GROUNDING_MODES:
        raise ValueError(f"grounding question mode {mode!r}; allowed: {', '.join(GROUNDING_MODES)}")
    text = " ".join(instruction.split())
    target = instruction_target(text) if mode != "off" else None
    if target is None:
        return text
    question = f"where is the {target}?"
    return question if mode == "only" else f"{text} {question}"
