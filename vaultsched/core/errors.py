"""The one error type users see: a single line on stderr and an exit code."""

from __future__ import annotations


class VaultschedError(Exception):
    """A failure the user can act on. The CLI prints `str(err)` and exits with `exit_code`.

    2 is a usage error (unknown task, bad arguments, not a vault); 1 is a refusal or a failure.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(message)
        self.exit_code = exit_code
