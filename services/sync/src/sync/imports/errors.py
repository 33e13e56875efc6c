"""Why an import cannot be read at all (per-file problems are issues in the report instead)."""

from __future__ import annotations


class ImportRefused(Exception):
    """The input as a whole is refused: over a size limit, a zip bomb, or an unknown format."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnsupportedFormat(ImportRefused):
    """No reader knows the file; the message names what was seen at its start."""

    def __init__(self, message: str) -> None:
        super().__init__("UNSUPPORTED_FORMAT", message)


class TruncatedInput(ValueError):
    """The file ends in the middle of its JSON: it was cut short."""
