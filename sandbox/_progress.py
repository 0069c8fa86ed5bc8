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
