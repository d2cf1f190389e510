"""The exception type the data layer raises for bad input (and its one special case, rejected credentials)."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset file or folder is missing, malformed or laid out differently than expected."""


class CredentialsRejected(DataError):
    """Kaggle refused the credentials a download was made with (HTTP 401/403)."""
