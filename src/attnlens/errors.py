"""Errors that attnlens raises on purpose.

Every message is one line that names the offending thing (path, repo id, key, row, limit), so a
user can fix the input without reading a traceback. The CLI prints these without a traceback.
"""

from __future__ import annotations


class AttnlensError(Exception):
    """Base class for every error attnlens raises about user input or files."""


class ConfigError(AttnlensError, ValueError):
    """A configuration (config.json or a YAML job config) is invalid or unsupported."""


class CheckpointError(AttnlensError):
    """Weights are missing, unreadable, corrupt or do not fit the model."""


class ModelNotFoundError(AttnlensError, FileNotFoundError):
    """A local folder or Hub repo (or revision) could not be found."""


class DataError(AttnlensError, ValueError):
    """A dataset file or row is unusable (names the file, row and value)."""


class InputError(AttnlensError, ValueError):
    """Text given for prediction or explanation is unusable (empty, too long, wrong type)."""
