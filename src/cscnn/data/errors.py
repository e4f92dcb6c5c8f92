"""The one exception type of the data layer."""

from __future__ import annotations

__all__ = ["DataError", "MissingDataError"]


class DataError(RuntimeError):
    """A data file or trajectory is missing, corrupt or does not fit the request."""


class MissingDataError(DataError, FileNotFoundError):
    """A data folder, split or file does not exist (also a ``FileNotFoundError``)."""
