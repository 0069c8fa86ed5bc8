"""The ``sandbox`` command's argument parser: argparse's, with errors as one ``sandbox: …``
sentence under the usage of the (sub-)command they were made in, a did-you-mean for commands,
options and choices, and a formatter told the terminal's width. Imported only when a parser is
built (``sandbox --version`` never imports argparse)."""
from __future__ import annotations

import argparse
import os
import sys

from sandbox.errors import did_you_mean


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, told the terminal's width the way shutil.get_terminal_size finds
    it ($COLUMNS, then the terminal, else 80) without importing shutil, which loads zlib, bz2
    and lzma: argparse builds a formatter for every add_argument, so every command paid ~2 ms."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24,
                 width: int | None = None) -> None:
        if width is None:
            try:
                width = int(os.environ.get("COLUMNS", "0"))
            except ValueError:
                width = 0
            if width <= 0:
                try:
                    width = os.get_terminal_size(sys.__stdout__.fileno()).columns
                except (AttributeError, ValueError, OSError):
                    width = 0
            width = (width or 80) - 2
        super().__init__(prog, indent_increment, max_help_position, width)


GLOBAL_HELP = ("global options, before or after the command: --dir DIR (the state directory), "
               "--progress / --no-progress (progress bars; default: only on a terminal)")


class Parser(argparse.ArgumentParser):
    """ArgumentParser with the formatter above; sub-command parsers inherit the class. Its
    errors are one ``sandbox: …`` sentence under the usage of the command they were made in."""

    def __init__(self, *args, formatter_class: type = _HelpFormatter, **kwargs) -> None:
        if kwargs.get("prog", "sandbox") != "sandbox":     # a sub-command: name the globals
            kwargs.setdefault("epilog", GLOBAL_HELP)
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str) -> None:  # argparse: must not return
        self.fail(_usage_sentence(self, message))

    def fail(self, sentence: str) -> None:
        """Exit 2 with this command's usage and ``sandbox: sentence``."""
        self.print_usage(sys.stderr)
        self.exit(2, f"sandbox: {sentence}\n")

    def fail_extra(self, extra: list[str]) -> None:
        """Arguments this (sub-)command does not take: its own usage, and a did-you-mean."""
        see = f"`{self.prog} --help` shows what it takes."
        unknown = [a for a in extra if a.startswith("-") and len(a) > 1]
        if unknown:
            word = unknown[0].split("=", 1)[0]
            options = [o for a in self._actions for o in a.option_strings] + GLOBAL_OPTIONS
            self.fail(f"`{self.prog}` has no option {word}.{did_you_mean(word, options)} {see}")
        self.fail(f"`{self.prog}` does not take {' '.join(extra)!r}; {see}")


GLOBAL_OPTIONS = ["--dir", "--progress", "--no-progress"]


def _usage_sentence(parser: argparse.ArgumentParser, message: str) -> str:
    """argparse's error message as one sentence that says what to do."""
    import re
    prog = parser.prog
    see = f"`{prog} --help` shows what it takes."
    m = re.match(r"argument (\S+): invalid choice: '(.*)' \(choose from (.*)\)$", message, re.S)
    if m:
        what, word, listed = m.groups()
        choices = re.findall(r"'([^']*)'", listed)
        hint = did_you_mean(word, choices)
        if what in ("COMMAND", "command"):
            return (f"'{word}' is not a `{prog}` command.{hint} `{prog} --help` lists the "
                    "commands.")
        return (f"{what} cannot be '{word}'.{hint} Choose one of: {', '.join(choices)}.")
    m = re.match(r"the following arguments are required: (.*)$", message)
    if m:
        return f"`{prog}` needs {m.group(1)}; {see}"
    m = re.match(r"argument (\S+): (.*)$", message)
    if m:
        return f"{m.group(1)}: {m.group(2)}; {see}"
    return f"{message[:1].upper()}{message[1:]}; {see}"
