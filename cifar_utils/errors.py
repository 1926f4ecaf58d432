"""One exception type for every mistake a user can fix.

The CLI turns a `CifarError` into a one-line message and a non-zero exit code, so every
message raised with it must say what is wrong and what to do about it.
"""


class CifarError(Exception):
    """A problem with the user's input, data or files (not a bug in this library)."""


class DatasetError(CifarError):
    """The CIFAR-10 files are missing, truncated, altered or unreadable."""


class ConfigError(CifarError, ValueError):
    """A configuration value is out of range or unknown."""
