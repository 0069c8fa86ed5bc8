"""CNI, the runtime side: libcni's job in Python (containernetworking/cni SPEC.md, spec
versions 0.3.x, 0.4.0, 1.0.0, 1.1.0).

    from sandbox.net.cni import Runtime
    rt = Runtime(conf_dir="/etc/cni/net.d", cni_path="/usr/lib/cni", node="sbx-node")
    result = rt.add("mynet", "sbx-c1")          # ADD, result cached
    rt.check("mynet", "sbx-c1"); rt.delete("mynet", "sbx-c1")
    print(explain(rt.calls))                    # every plugin exec: env, stdin, stdout, exit

Modules: ``conf`` (loading network configurations), ``version`` (versions and result
conversion), ``invoke`` (the exec protocol), ``cache`` (libcni's result cache), ``runtime``
(ADD/CHECK/DEL/GC/STATUS over a list of plugins), ``errors`` (CniError). The kit's own plugins
live in :mod:`sandbox.net.plugins`.
"""
# The names below load on first use (PEP 562): the kit's CNI plugins import
# sandbox.net.cni.version at every exec, and importing this package must not pull the whole
# runtime in with it.
_EXPORTS = {
    "cache": ("DEFAULT_CACHE_DIR", "Attachment", "Cache"),
    "conf": ("DEFAULT_CONF_DIR", "ConfError", "NetworkConfig", "load", "load_all"),
    "errors": ("CniError",),
    "invoke": ("DEBIAN_CNI_DIR", "DEFAULT_CNI_PATH", "Exec", "PluginNotFoundError", "exec_plugin", "explain",
               "find_plugin", "supported_versions"),
    "runtime": ("AttachmentError", "GcReport", "Runtime"),
    "version": ("CURRENT", "SUPPORTED_VERSIONS", "convert_result"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
