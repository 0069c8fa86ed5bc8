"""Progress bars (tqdm) for long work: render, hashing, the catalogue, downloads.

tqdm starts a *monitor thread* with its first bar, and the thread lives as long as the process.
A process with a second thread must not fork and keep running Python (:mod:`sandbox._sys.proc`), so
one progress bar would make every later pod start of that process exec fresh interpreters
(~50 ms slower). The monitor only nudges bars that stall; the kit's bars update often enough.
"""
from __future__ import annotations


def tqdm_class(auto: bool = True) -> type:
    """tqdm's bar class (``tqdm.auto``'s, a widget in a notebook, or the plain terminal one),
    with the monitor thread turned off."""
    from tqdm import std
    std.tqdm.monitor_interval = 0
    if auto:
        from tqdm.auto import tqdm
        return tqdm
    return std.tqdm


def wanted() -> bool:
    """Whether a command of the CLI shows progress bars: ``--progress`` / ``--no-progress``
    (which set ``$SANDBOX_PROGRESS`` to 1 / 0, so the processes it starts follow), else only
    when stderr is a terminal — a bar's carriage returns would be mixed into a log file or a
    pipe. (Notebooks pass ``progress=True`` to the library themselves: there a bar is a widget.)"""
    import os
    import sys
    forced = os.environ.get("SANDBOX_PROGRESS")
    if forced in ("0", "1"):
        return forced == "1"
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):    # no stderr, or a closed one
        return False
