"""The ``sandbox`` command line: a thin layer over the library.

Each module in this package adds its own sub-commands through ``register(subparsers)``; they
are found automatically, so a new area of the kit is one new file here. Handlers receive the
parsed ``argparse.Namespace`` and return an exit code (or None for 0).

User mistakes raise :class:`sandbox.errors.SandboxError`; they are printed as one sentence,
never as a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from sandbox import __version__
from sandbox.errors import SandboxError


def command_group(subparsers: argparse._SubParsersAction, name: str,
                  help: str) -> argparse._SubParsersAction:
    """The sub-command group ``name`` (e.g. ``image``), created on first use.

    Several modules may add commands to one group (``image build`` lives in cli/image.py,
    ``image render`` in cli/render.py); each calls this and adds its own parsers.
    """
    parser = subparsers._name_parser_map.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
        parser.set_defaults(func=lambda args, p=parser: (p.print_help(), 2)[1])
        parser._sandbox_group = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND")
    return parser._sandbox_group


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


class _Parser(argparse.ArgumentParser):
    """ArgumentParser with the formatter above; sub-command parsers inherit the class."""

    def __init__(self, *args, formatter_class: type = _HelpFormatter, **kwargs) -> None:
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def _area_modules() -> list[str]:
    here = os.path.dirname(__file__)
    return sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_"))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or — given the command about to run — only the parsers of the modules
    whose ``COMMANDS`` name it (building all ~60 costs more than running a short pod)."""
    parser = _Parser(
        prog="sandbox",
        description="Container Standards Lab: a small, inspectable container runtime.")
    parser.add_argument("--version", action="version", version=f"sandbox {__version__}")
    parser.add_argument("--dir", metavar="DIR", dest="state_dir",
                        help="state directory (default: $SANDBOX_DIR or /var/lib/sandbox)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = []
    for name in _area_modules():
        try:
            modules.append((name, importlib.import_module(f"{__name__}.{name}")))
        except Exception as e:  # one broken area must not take the whole CLI down
            print(f"sandbox: the '{name}' commands could not be loaded ({e}); "
                  "the others still work.", file=sys.stderr)
    owners = [m for _, m in modules if command in getattr(m, "COMMANDS", ())]
    for module in owners or [m for _, m in modules]:
        register = getattr(module, "register", None)
        if register is not None:
            register(sub)
    return parser


def commands() -> list[tuple[str, str]]:
    """Every top-level sub-command and its one-line help, read from the parser itself."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help or "" for a in sub._choices_actions}
    return [(name, helps.get(name, "")) for name in sorted(sub.choices)]


def overview():
    """The ``sandbox`` sub-commands and what each does, as a table a notebook shows."""
    from sandbox.viz import HtmlTable
    return HtmlTable(["command", "what it does"], [[f"sandbox {n}", h] for n, h in commands()])


def _command_word(argv: list[str]) -> str | None:
    """The sub-command in ``argv`` (the first word that is not a global option or its value)."""
    it = iter(argv)
    for tok in it:
        if tok == "--dir":
            next(it, None)
        elif not tok.startswith("-"):
            return tok
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `sandbox enter UUID --app A -- CMD…`, `sandbox netns exec NAME -- CMD…`: everything after
    # the first "--" is the command to run, handed over as args.cmd (argparse alone mixes it up
    # with sub-command options).
    rest = None
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    command = _command_word(argv)
    if command is None and "--version" in argv:     # no area's parsers needed for this
        print(f"sandbox {__version__}")
        return 0
    parser = build_parser(command)
    args = parser.parse_args(argv)
    if rest is not None:
        if not hasattr(args, "cmd"):
            parser.error("'--' only goes before a command to run (netns exec, enter)")
        args.cmd = rest
    if args.state_dir:
        os.environ["SANDBOX_DIR"] = os.path.abspath(args.state_dir)
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    global _quick_exit
    _quick_exit = bool(getattr(args, "quick_exit", False))
    try:
        rc = handler(args)
    except SandboxError as e:
        print(f"sandbox: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sandbox: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return int(rc or 0)


_quick_exit = False


def entry() -> None:
    """The ``sandbox`` program (console script and ``python -m sandbox``).

    Commands that set ``quick_exit`` (those that start a pod) leave without the interpreter's
    final clean-up of every module (~4 ms of a ~50 ms pod run): their work is done by then, the
    streams are flushed here, and every file they write is closed where it is written."""
    rc = main()
    if _quick_exit:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)
    sys.exit(rc)


if __name__ == "__main__":  # pragma: no cover
    entry()
