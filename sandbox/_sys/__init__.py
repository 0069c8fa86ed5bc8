"""The kit's one private place for talking to the kernel: system calls Python 3.11 lacks
(:mod:`~sandbox._sys.libc`), forking stages (:mod:`~sandbox._sys.proc`), the mount table
(:mod:`~sandbox._sys.mountinfo`) and the platform table (:mod:`~sandbox._sys.platform`).

Nothing here knows about images, pods or networks; every other layer may use it.
"""
