"""The one exception type the data layer raises for bad input."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset file or folder is missing, malformed or laid out differently than expected."""
