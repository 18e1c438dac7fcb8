"""Errors of the framecast client."""

from __future__ import annotations

_RETRYABLE = {"RATE_LIMITED", "OVERLOADED", "UNAVAILABLE", "NOT_CONNECTED", "CONNECTION_LOST", "TIMEOUT"}


class FramecastError(Exception):
    """``code`` is the server's error code (``FORBIDDEN``, ``RATE_LIMITED``, …) or the client's own:
    ``NOT_CONNECTED``, ``CONNECTION_LOST``, ``TIMEOUT``, ``CLOSED``, ``FAILED``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message

    @property
    def retryable(self) -> bool:
        """Whether trying again later may succeed."""
        return self.code in _RETRYABLE
