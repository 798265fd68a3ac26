"""Errors a user can act on. The CLI prints them as one line and exits with code 2."""


class SfllavaError(Exception):
    """Base class: the message names the bad value and, where there is one, the fix."""

    exit_code = 2


class ConfigError(SfllavaError, ValueError):
    """A config value is out of range or inconsistent with another."""


class CheckpointError(SfllavaError):
    """A checkpoint folder cannot be read or does not match the model it describes."""


class VideoError(SfllavaError):
    """A video file cannot be decoded into the frames a model needs."""
