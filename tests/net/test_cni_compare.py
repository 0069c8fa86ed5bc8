"""sandbox.net.cni.compare: one configuration through the kit's plugins and Debian's upstream
ones (each in a node of its own) gives equivalent results and kernel state; DEL the hard ways
(netns gone; empty CNI_NETNS, plugins#810) frees the address with both, and only the kit's
plugin also removes the container's NAT rules."""
from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.net import netns
from sandbox.net.cni import DEBIAN_CNI_DIR, compare
from sandbox.net.plugins import plugin_dir

pytestmark = [pytest.mark.root]


def test_twins_agree_and_hard_dels_differ(tmp_path: Path, upstream_plugins: Path) -> None:
    s = netns.Session(prefix="sbx-cmp")
    try:
        conf = {"cniVersion": "1.0.0", "name": "sbx-cmp", "type": "bridge", "isGateway": True,
                "ipMasq": True, "ipam": {"type": "host-local", "subnet": "10.71.0.0/24",
                                         "routes": [{"dst": "0.0.0.0/0"}]}}
        pair = compare.twins(s, conf, {"upstream": DEBIAN_CNI_DIR, "ours": str(plugin_dir())},
                             tmp_path / "twins")
        assert compare.twin_differences(pair) == {"result": [], "node": [], "container": []}
        # the comparison can fail: break one side and it says where
        netns.run(pair["ours"].container, ["ip", "route", "del", "default"], check=True)
        assert compare.twin_differences(pair)["container"]
        rows = [compare.del_without_netns(t, how) for how in ("gone", "empty") for t in pair.values()]
        assert all(r["address freed"] for r in rows)
        left = {(r["plugins"], r["DEL with CNI_NETNS"]): r["NAT rules left for it"] for r in rows}
        assert left[("ours", "a path that is gone")] == left[("ours", "'' (empty)")] == 0
        # Debian's bridge v1.1.1 leaks the chain and its jump (plugins#810): 4 lines of -S
        assert left[("upstream", "a path that is gone")] == left[("upstream", "'' (empty)")] == 4
    finally:
        s.close()
