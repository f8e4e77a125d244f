"""Domain errors of the search-space package: each names the value, where it stood and what was expected."""

from __future__ import annotations


class ArchError(ValueError):
    """A malformed architecture string, unknown token, reference or space."""

    def __init__(self, message: str, *, value: str = "", where: str = "", expected: str = "") -> None:
        super().__init__(message)
        self.value = value
        self.where = where
        self.expected = expected
