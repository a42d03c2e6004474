"""Errors raised by the episode store; each names what is wrong and where."""

from __future__ import annotations


class StoreError(Exception):
    """Base class of every episode-store error."""


class StepValidationError(ValueError, StoreError):
    """A step passed to ``EpisodeWriter.append`` is malformed (names the key and the step)."""

    def __init__(self, step: int, key: str, problem: str) -> None:
        self.step, self.key, self.problem = step, key, problem
        super().__init__(f"step {step}: key {key!r}: {problem}")


class FormatVersionError(StoreError):
    """The store was written by a newer (or unknown) format version than this code reads."""


class StoreWriteError(StoreError, OSError):
    """Writing failed (disk full, permission denied, ...). Committed episodes are intact."""


class CorruptEpisodeError(StoreError):
    """A chunk of a committed episode cannot be read or decoded."""

    def __init__(self, episode: int, key: str, cause: BaseException) -> None:
        self.episode, self.key = episode, key
        super().__init__(f"episode {episode}: key {key!r} is corrupted or unreadable: {type(cause).__name__}: {cause}")
