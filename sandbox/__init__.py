"""Container Standards Lab: a small, fully inspectable container runtime for teaching.

One sub-package per area, in the order the course teaches them (docs/architecture.md):
``image`` → ``render`` → ``trust`` → ``dist`` → ``net`` → ``pod`` → ``oci`` → ``course``, with
``viz`` and ``cli`` as thin layers on top and ``_sys`` (the kernel-facing helpers) underneath.
Every operation can record the steps it takes in a :class:`sandbox.steps.Steps`.
"""
__version__ = "0.1.0"
