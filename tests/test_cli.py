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
