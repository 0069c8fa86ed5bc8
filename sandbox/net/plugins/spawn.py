"""Start a helper program (the delegated IPAM plugin, iptables) and collect its output, with
posix_spawn(3) and pipes. The ``subprocess`` module would do the same; importing it costs more
than a plugin exec can afford, and the plugins need only this much.

A child's stdout and stderr go to one pipe unless ``stderr_inherit`` (then it writes straight
to the plugin's own stderr, i.e. the runtime's log). Input is small (a network config), so it is
written whole before reading.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping, Sequence


class Proc:
    def __init__(self, argv: "Sequence[str]", stdin: bytes = b"", env: "Mapping[str, str] | None" = None,
                 stderr_inherit: bool = False) -> None:
        in_r, in_w = os.pipe2(os.O_CLOEXEC)
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        actions = [(os.POSIX_SPAWN_DUP2, in_r, 0), (os.POSIX_SPAWN_DUP2, out_w, 1)]
        if not stderr_inherit:
            actions.append((os.POSIX_SPAWN_DUP2, out_w, 2))
        try:
            self.pid = os.posix_spawn(argv[0], list(argv), dict(os.environ if env is None else env),
                                      file_actions=actions)
        finally:
            os.close(in_r)
            os.close(out_w)
        self._out = out_r
        self.returncode: int | None = None
        self.output = b""
        try:
            view = memoryview(stdin)
            while view:
                view = view[os.write(in_w, view):]
        except BrokenPipeError:
            pass
        finally:
            os.close(in_w)

    def wait(self) -> tuple[int, bytes]:
        """(exit code, output); reads to EOF, then reaps the child."""
        if self.returncode is None:
            chunks = []
            while True:
                b = os.read(self._out, 65536)
                if not b:
                    break
                chunks.append(b)
            os.close(self._out)
            self.output = b"".join(chunks)
            _, status = os.waitpid(self.pid, 0)
            self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode, self.output


def run(argv: "Sequence[str]", stdin: bytes = b"") -> tuple[int, bytes]:
    return Proc(argv, stdin).wait()
