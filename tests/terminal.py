"""Running a command on a terminal of its own (a pseudo-terminal), as a user at a keyboard does:
what a program does differently there (progress bars, prompts) can only be seen this way."""
from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
import time
from pathlib import Path


def in_pty(argv: list[str], env: dict[str, str], answers: tuple[tuple[bytes, bytes], ...] = (),
           cwd: Path | None = None, timeout: float = 120) -> tuple[int, str]:
    """Run ``argv`` with stdin, stdout and stderr on a pseudo-terminal of 30 rows x 100 columns
    (a new one has 0 x 0, where tqdm draws nothing), typing each ``(prompt, answer)`` once its
    prompt has shown; return (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                            close_fds=True)
    os.close(slave)
    seen, todo = b"", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if todo and todo[0][0] in seen:
                os.write(master, todo.pop(0)[1])
            r, _, _ = select.select([master], [], [], 0.2)
            if r:
                try:
                    chunk = os.read(master, 65536)
                except OSError:         # EIO: the other side closed
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=60), seen.decode(errors="replace")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
