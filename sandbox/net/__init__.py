"""Networking: network namespaces and the Container Network Interface (slides 40–51; CNI SPEC.md
1.1.0).

- :mod:`~sandbox.net.netns` — network namespaces the slide's way (``unshare`` + bind mount);
- :mod:`~sandbox.net.cni` — the runtime side of CNI (libcni's job): configs, exec protocol,
  cache, ADD/CHECK/DEL/GC/STATUS;
- :mod:`~sandbox.net.plugins` — the kit's own plugins (bridge, host-local, loopback, ptp).

Kept empty on purpose: a plugin process imports ``sandbox.net.plugins.*`` and nothing else.
"""
