"""The one shape of every refusal: an HTTP status, a machine-readable code and a sentence."""

from __future__ import annotations


class Refused(Exception):
    """A request or a file the gateway will not take, and why."""

    def __init__(self, code: str, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status


def not_found(what: str) -> Refused:
    """What a caller may not see is answered exactly as what does not exist."""
    return Refused(f"{what}_not_found", f"There is no {what} with this id.", 404)
