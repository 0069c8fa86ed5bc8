"""Rendering: from an image and its dependencies to the app's root filesystem (slides 12–13:
an app image on top of a runtime image; appc 0.8.11 ace.md §Filesystem Setup, aci.md
§dependencies, §pathWhitelist, §Dependency Matching).

- :mod:`~sandbox.render.graph` — resolve dependencies into a DAG and its override order;
- :mod:`~sandbox.render.rootfs` — extract the layers in that order, honouring pathWhitelist;
- :mod:`~sandbox.render.trace` — who wrote, overrode, shadowed or removed each path;
- :mod:`~sandbox.render.treestore` — render once per dependency set, a clean copy per app.

The names most notebooks use are importable from here (``from sandbox import render``).
"""
from sandbox.render.graph import (
                                  MAX_LAYERS,
                                  RENDERER_VERSION,
                                  DependencyCycle,
                                  DependencyError,
                                  DependencyGraph,
                                  DependencyMismatch,
                                  DependencyNotFound,
                                  Fetch,
                                  ImageSource,
                                  Layer,
                                  Node,
                                  RenderError,
                                  Whitelist,
                                  describe,
                                  resolve,
                                  short,
)
from sandbox.render.rootfs import OpenTar, render, rootfs_path
from sandbox.render.trace import PathEvent, PathHistory, RenderTrace

__all__ = ["MAX_LAYERS", "RENDERER_VERSION", "DependencyCycle", "DependencyError", "DependencyGraph",
           "DependencyMismatch", "DependencyNotFound", "Fetch", "ImageSource", "Layer", "Node",
           "OpenTar", "PathEvent", "PathHistory", "RenderError", "RenderTrace", "Whitelist",
           "describe", "render", "resolve", "rootfs_path", "short"]
