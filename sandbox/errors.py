"""Exceptions the kit raises for things a user can fix.

Every message is a whole sentence that says what went wrong and, where possible, what to do.
The CLI prints ``sandbox: <message>`` and exits non-zero; it never shows a traceback for these.
"""
from __future__ import annotations


# What must not reach a terminal as it is: C0 and C1 controls (tab aside), DEL, the bidi
# controls, lone surrogates. An image's entry names end up in errors, warnings and steps: an
# escape sequence there retitles the window or recolours what follows, "\r" and "\n" forge
# lines that look like the kit's own ("extracted ... all good"), and a lone surrogate (a name
# that is not UTF-8) made print() to stdout raise UnicodeEncodeError.
# (The table is made at the first use: this module is imported on every pod start.)
_UNPRINTABLE: dict[int, str] = {}


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on written as an escape (``\\x1b``)."""
    if not _UNPRINTABLE:
        _UNPRINTABLE.update({c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))
                             if c != 0x09})
        _UNPRINTABLE.update({c: f"\\u{c:04x}" for c in (0x200E, 0x200F, *range(0x202A, 0x202F),
                                                         *range(0x2066, 0x206A),
                                                         *range(0xD800, 0xE000))})
    return text.translate(_UNPRINTABLE)


LONGEST_WORD = 200     # characters of one unbroken run a message shows as it is


def shortened(text: str, longest: int = LONGEST_WORD) -> str:
    """``text`` with every run of over ``longest`` non-space characters cut to its start and
    end: a message echoes what it was given (a name, a path), and 5,000 characters of it made
    a "sentence" of 5,000 characters."""
    if len(text) <= longest:
        return text
    import re
    return re.sub(r"\S{%d,}" % (longest + 1),
                  lambda m: f"{m[0][:100]}…({len(m[0]):,} characters)…{m[0][-40:]}", text)


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


def did_you_mean(word: str, choices: "list[str] | set[str] | tuple[str, ...]") -> str:
    """`` Did you mean 'x'?`` (or ``'x' or 'y'``) when some of ``choices`` are close to
    ``word`` — a typo in a command, an option, an image name or a pod UUID — else ``""``.
    Only the closest are named (difflib's ratio at least 0.6 and within 0.05 of the best):
    names that share a long prefix (``example.com/…``) would otherwise all look close.
    difflib is imported only here: on the way to an error message."""
    import difflib
    scored = []
    for c in dict.fromkeys(choices):
        m = difflib.SequenceMatcher(None, word, c)
        if m.real_quick_ratio() >= 0.6 and m.quick_ratio() >= 0.6 and m.ratio() >= 0.6:
            scored.append((m.ratio(), c))
    if not scored:
        return ""
    best = max(r for r, _ in scored)
    close = [c for r, c in sorted(scored, key=lambda x: -x[0]) if r >= best - 0.05][:3]
    return " Did you mean " + " or ".join(f"'{c}'" for c in close) + "?"
