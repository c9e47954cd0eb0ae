"""Exceptions with messages meant for users: one line naming the problem and the way out."""

from __future__ import annotations


class StreamnormError(Exception):
    """Base class of the errors streamnorm raises about its inputs."""


class InputError(StreamnormError, ValueError):
    """A source that cannot be read: missing, corrupt, truncated or of an unknown format."""


class SchemaError(StreamnormError, ValueError):
    """A batch whose columns do not match what the statistics or the normalizer expect."""


class StatsFileError(InputError):
    """Saved statistics (a statistics file, or the record in a normalized file's metadata)
    that are corrupt or not streamnorm's: the message names the file, the field and the
    problem. An :class:`InputError` (so a ``ValueError``): a statistics file is an input."""
