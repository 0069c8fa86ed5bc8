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
from sandbox.net.cni.cache import DEFAULT_CACHE_DIR, Attachment, Cache
from sandbox.net.cni.conf import (
                                DEFAULT_CONF_DIR,
                                ConfError,
                                NetworkConfig,
                                load,
                                load_all,
)
from sandbox.net.cni.errors import CniError
from sandbox.net.cni.invoke import (
                                DEFAULT_CNI_PATH,
                                Exec,
                                PluginNotFoundError,
                                exec_plugin,
                                explain,
                                find_plugin,
                                supported_versions,
)
from sandbox.net.cni.runtime import AttachmentError, GcReport, Runtime
from sandbox.net.cni.version import CURRENT, SUPPORTED_VERSIONS, convert_result

__all__ = ["Attachment", "AttachmentError", "Cache", "CniError", "ConfError", "CURRENT",
           "DEFAULT_CACHE_DIR", "DEFAULT_CNI_PATH", "DEFAULT_CONF_DIR", "Exec", "GcReport",
           "NetworkConfig", "PluginNotFoundError", "Runtime", "SUPPORTED_VERSIONS",
           "convert_result", "exec_plugin", "explain", "find_plugin", "load", "load_all",
           "supported_versions"]
