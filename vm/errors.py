"""The one error type of the vm package: the CLI prints it as one line and exits non-zero."""

from __future__ import annotations


class VmError(Exception):
    """A failure the user can act on; `detail` (e.g. a log tail) is printed after the line."""

    def __init__(self, message: str, detail: str = "", exit_code: int = 1) -> None:
        super().__init__(message)
        self.detail = detail
        self.exit_code = exit_code
