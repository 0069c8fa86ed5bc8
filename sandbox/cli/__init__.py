"""The ``sandbox`` command line: a thin layer over the library.

Each module in this package adds its own sub-commands through ``register(subparsers)``; they
are found automatically, so a new area of the kit is one new file here. Handlers receive the
parsed ``argparse.Namespace`` and return an exit code (or None for 0).

User mistakes raise :class:`sandbox.errors.SandboxError`; they are printed as one sentence,
never as a traceback. Argument mistakes are printed the same way (``sandbox: …``), under the
usage of the (sub-)command they were made in, with a "did you mean" when a command, option or
choice is close to a real one. The global options (``--dir``, ``--progress``/``--no-progress``)
go before or after the sub-command.
"""
from __future__ import annotations

import errno
import importlib
import os
import sys

from sandbox import __version__
from sandbox.errors import SandboxError, UsageError, printable, shortened

TYPE_CHECKING = False   # argparse is imported where a parser is built: `sandbox --version` and
if TYPE_CHECKING:       # nothing else needs it (~7 ms of argparse and re)
    import argparse
    from typing import Any


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


def _area_modules() -> list[str]:
    here = os.path.dirname(__file__)
    return sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_"))


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or — given the command about to run — only the parsers of the modules
    whose ``COMMANDS`` name it (building all ~60 costs more than running a short pod)."""
    import argparse

    from sandbox.cli._parser import Parser
    parser = Parser(
        prog="sandbox",
        description="Container Standards Lab: a small, inspectable container runtime.")
    parser.add_argument("--version", action="version", version=f"sandbox {__version__}")
    # the global options are taken out of argv by split_globals (anywhere in it); these two
    # entries only show them in `sandbox --help`
    parser.add_argument("--dir", metavar="DIR", dest="state_dir",
                        help="state directory (default: $SANDBOX_DIR or /var/lib/sandbox); "
                             "before or after the command")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: only when stderr is a terminal)")
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
    import argparse
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


def split_globals(argv: list[str]) -> tuple[list[str], dict[str, object]]:
    """Take the global options out of ``argv`` wherever they stand — ``sandbox --dir X image
    list`` and ``sandbox image list --dir X`` alike (argparse alone accepts them only before
    the sub-command) — and return (the rest, {option: value})."""
    rest: list[str] = []
    found: dict[str, object] = {}
    i = 0
    while i < len(argv):
        tok = argv[i]
        if tok == "--dir" or tok.startswith("--dir="):
            if tok == "--dir":
                if i + 1 >= len(argv) or not argv[i + 1]:
                    raise UsageError("--dir needs a directory, e.g. --dir /tmp/sbx-state.")
                value, i = argv[i + 1], i + 2
            else:
                value, i = tok[6:], i + 1
            if not value:
                raise UsageError("--dir needs a directory, e.g. --dir /tmp/sbx-state.")
            found["state_dir"] = value
            continue
        if tok in ("--progress", "--no-progress"):
            found["progress"] = tok == "--progress"
        else:
            rest.append(tok)
        i += 1
    return rest, found


def _leaf(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The (sub-)command parser that ``args`` came from: ``sandbox image list`` → its parser."""
    sub = parser._subparsers._group_actions[0] if parser._subparsers else None
    command = getattr(args, "command", None)
    leaf = sub.choices.get(command) if sub is not None and command else None
    if leaf is None:
        return parser
    group = getattr(leaf, "_sandbox_group", None)
    word = getattr(args, f"{command}_command", None) if group is not None else None
    return group.choices.get(word, leaf) if word else leaf


def _quick_run_prepared(argv: list[str]) -> Any:
    from sandbox.cli import pod
    return pod.quick_args(argv)


# commands whose plain shape is read without argparse (its import and the parsers' build cost
# more than a short pod's own work); anything else about them goes through the parser
_QUICK = {"run-prepared": _quick_run_prepared}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # `sandbox enter UUID --app A -- CMD…`, `sandbox netns exec NAME -- CMD…`: everything after
    # the first "--" is the command to run, handed over as args.cmd (argparse alone mixes it up
    # with sub-command options).
    rest = None
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    try:
        argv, found = split_globals(argv)
    except SandboxError as e:
        print(f"sandbox: {printable(shortened(str(e)))}", file=sys.stderr)
        return e.exit_code
    command = _command_word(argv)
    if command is None and "--version" in argv:     # no area's parsers needed for this
        print(f"sandbox {__version__}")
        return 0
    if "progress" in found:     # read by sandbox._progress.wanted(), in this process and its children
        os.environ["SANDBOX_PROGRESS"] = "1" if found["progress"] else "0"
    # the pod start measured against runc reads its plain shape without argparse
    args = _QUICK[command](argv) if command in _QUICK and rest is None else None
    if args is None:
        parser = build_parser(command)
        args, extra = parser.parse_known_args(argv)
        if extra:
            _leaf(parser, args).fail_extra(extra)
        if rest is not None:
            if not hasattr(args, "cmd"):
                _leaf(parser, args).error("'--' only goes before a command to run (netns exec, "
                                          "enter)")
            args.cmd = rest
    handler = getattr(args, "func", None)
    if handler is None:
        parser.print_help()
        return 2
    global _quick_exit
    _quick_exit = bool(getattr(args, "quick_exit", False))
    try:
        if found.get("state_dir") is not None:
            from sandbox import config
            os.environ["SANDBOX_DIR"] = os.path.abspath(str(found["state_dir"]))
            config.check_state_dir()        # exists or can be made, and is one the kit may use
        rc = handler(args)
    except SandboxError as e:
        print(f"sandbox: {printable(shortened(str(e)))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sandbox: interrupted.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as e:
        # The machine refused a path (most often one the user gave: an output in a directory
        # that does not exist, a device where a directory goes, a read-only or full disk):
        # that is theirs to fix, not a bug of the kit.
        sentence = _path_refused(e)
        if sentence is None or os.environ.get("SANDBOX_DEBUG") == "1":
            return _last_resort(e, argv)
        print(f"sandbox: {printable(shortened(sentence))}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - the last resort: a sentence, never a traceback
        return _last_resort(e, argv)
    return int(rc or 0)


# What to do about a path the system refused, by errno (see _path_refused).
_PATH_ADVICE = {
    errno.ENOENT: "check the path: its directory must exist",
    errno.ENOTDIR: "a part of that path is not a directory",
    errno.EISDIR: "that is a directory; give a file",
    errno.EEXIST: "something is in the way there; remove it or choose another path",
    errno.EACCES: "check its permissions",
    errno.EPERM: "check its permissions (and that it is not immutable or a mount point)",
    errno.EROFS: "that file system is read-only; choose a path on a writable one",
    errno.ENOSPC: "the disk is full; free some space or choose another disk",
    errno.EDQUOT: "the disk quota is used up; free some space",
    errno.ENAMETOOLONG: "the name is too long",
    errno.ELOOP: "it loops through symbolic links",
    errno.EBUSY: "it is busy (mounted, or in use)",
    errno.ETXTBSY: "it is a program that is running",
}


def _path_refused(e: OSError) -> str | None:
    """One sentence for an OSError about a named path, or None (not one of those, or a path in
    the state directory: the kit's own, so a bug)."""
    from sandbox import config
    advice = _PATH_ADVICE.get(e.errno) if e.errno is not None else None
    if advice is None or e.filename is None:
        return None
    where = os.fsdecode(e.filename)
    state = os.path.join(os.path.abspath(config.sandbox_dir()), "")
    if os.path.join(os.path.abspath(where), "").startswith(state):
        return None
    if e.errno == errno.ENOENT:         # name the first part of the path that is missing
        parent = os.path.dirname(os.path.abspath(where))
        while parent != "/" and not os.path.lexists(parent):
            where, parent = parent, os.path.dirname(parent)
    return f"{where}: {(e.strerror or '').lower()}; {advice}."


def _last_resort(e: BaseException, argv: list[str]) -> int:
    """An exception the kit did not turn into a sentence: one anyway, and how to see where."""
    if os.environ.get("SANDBOX_DEBUG") == "1":
        raise e
    words = " ".join(a for a in argv if not a.startswith("-"))[:60]
    print(f"sandbox: `sandbox {words}` failed inside the kit ({type(e).__name__}: "
          f"{printable(shortened(str(e)))}); this is a bug: run it again with SANDBOX_DEBUG=1 "
          "to see where, and report it.", file=sys.stderr)
    return 70       # EX_SOFTWARE


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
