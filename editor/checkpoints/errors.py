"""The loader's errors: every refusal is one of these, with a message that says why."""

from __future__ import annotations


class CheckpointError(ValueError):
    """A file that is not a loadable checkpoint: corrupt, truncated, wrong format, or not matching its config."""


class UnsafePickleError(CheckpointError):
    """A pickle that asks for something outside the allow-list (a global, a persistent id, a state on a foreign
    object). Nothing it asked for was executed."""


class ModelUnavailableError(FileNotFoundError):
    """A model that is not on this machine and could not be downloaded; the message says where to put it."""
