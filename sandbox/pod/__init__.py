"""Pods: running apps from images (appc 0.8.11 ace.md §App Container Executor, pods.md; rkt's
stage0 / stage1 / stage2, slide 29).

- :mod:`~sandbox.pod.stage0` — prepare, run, status, stop, gc (what the ``rkt`` command does);
- :mod:`~sandbox.pod.supervisor` — a running pod's set-up and tear-down (one stack of undo steps);
- :mod:`~sandbox.pod.stage1` — the pod's PID 1 and each app's runner, inside the namespaces;
- :mod:`~sandbox.pod.ace` — the execution environment the spec promises an app;
- :mod:`~sandbox.pod.metadata` — the metadata service;
- :mod:`~sandbox.pod.cgroups` — a cgroup for every pod (kill by cgroup) and the resource isolators;
- :mod:`~sandbox.pod.perspective` — the app's perspective next to the host's;
- :mod:`~sandbox.pod.conformance` — appc's ACE validator run in the kit's pods.

Kept empty on purpose: stage1 starts in a fresh interpreter on the exec path.
"""
