"""Exceptions the kit raises for things a user can fix.

Every message is a whole sentence that says what went wrong and, where possible, what to do.
The CLI prints ``sandbox: <message>`` and exits non-zero; it never shows a traceback for these.
"""
from __future__ import annotations


class SandboxError(Exception):
    """Base class: a user-facing problem with an actionable message."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} {self.hint}"


class UsageError(SandboxError):
    """The command line or arguments are wrong."""

    exit_code = 2


class NotRootError(SandboxError):
    """The operation needs root (namespaces, mounts, netlink outside one's own netns)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} needs root privileges.", hint="Run it as root (e.g. with sudo).")
