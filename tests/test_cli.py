"""The CLI shell: sub-commands are discovered, and user mistakes never show a traceback."""
from __future__ import annotations

import subprocess
import sys


def test_help_lists_subcommands(run_cli) -> None:
    rc, out, _ = run_cli("--help")
    assert rc == 0
    assert "usage: sandbox" in out


def test_unknown_command_is_a_usage_error_without_traceback() -> None:
    p = subprocess.run([sys.executable, "-m", "sandbox", "no-such-command"],
                       capture_output=True, text=True)
    assert p.returncode == 2
    assert "Traceback" not in p.stderr
    assert "invalid choice" in p.stderr


def test_each_area_declares_exactly_the_commands_it_registers() -> None:
    """`sandbox CMD` builds only the parsers of the modules whose COMMANDS name CMD, so a
    module that registers a command without declaring it would make that command vanish."""
    import argparse
    import importlib

    from sandbox import cli
    seen: dict[str, set[str]] = {}
    for name in cli._area_modules():
        module = importlib.import_module(f"sandbox.cli.{name}")
        sub = argparse.ArgumentParser().add_subparsers()
        module.register(sub)
        assert set(module.COMMANDS) == set(sub._name_parser_map), name
        for c in module.COMMANDS:
            seen.setdefault(c, set()).add(name)
    assert seen["run"] == {"pod"} and seen["image"] == {"image", "render"}
    full = cli.build_parser()._subparsers._group_actions[0].choices
    assert set(full) == set(seen)


def test_a_command_builds_only_its_own_parsers() -> None:
    from sandbox import cli
    only_run = cli.build_parser(cli._command_word(["--dir", "/x", "run", "img"]))
    choices = only_run._subparsers._group_actions[0].choices
    assert "run" in choices and "status" in choices and "image" not in choices
    both = cli.build_parser(cli._command_word(["image", "render", "x"]))
    image = both._subparsers._group_actions[0].choices["image"]
    group = image._sandbox_group.choices
    assert {"build", "render"} <= set(group)          # image.py's and render.py's commands


def test_run_help_and_a_global_dir_before_the_command(run_cli, tmp_path) -> None:
    rc, out, _ = run_cli("--dir", str(tmp_path), "run", "--help")
    assert rc == 0 and "--net" in out and "--detach" in out
