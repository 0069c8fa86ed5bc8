"""A veth attachment whose addresses come from a delegated IPAM plugin: the ADD bookkeeping
and the DEL that ``bridge`` and ``ptp`` share (upstream's plugins/main/bridge and
plugins/main/ptp follow the same steps).

ADD, in a plugin::

    job = ipam.Delegation(a, "ADD").start()     # the IPAM plugin runs while we do netlink
    with attach.Add("ptp", a, job) as add:
        add.open()                              # CNI_NETNS fd + a netlink socket in each netns
        host, hl, cl = link.create_veth(add.node, add.fd, add.cont, a.ifname)
        add.made = True                         # from here on, a failure deletes the veth
        r = add.ipam_result()
        add.masq = ipmasq.setup(...)            # a failure removes the NAT chain
        return result

If the block fails, what it took is given back in reverse order, a bridge it created included
(SPEC.md "ADD": a failed ADD must not leave anything behind; §4 "Plugin Delegation": the main
plugin then calls the IPAM plugin with DEL). The sockets and the fd are closed in every case.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
# every plugin module starts this way: typing costs ms per plugin exec (annotations are
# strings anyway), and the names come from skel
if TYPE_CHECKING:
    from typing import Any

from sandbox.net.plugins import ipam, ipmasq, link
from sandbox.net.plugins.skel import (
    ERR_INTERNAL,
    CmdArgs,
    CNIError,
    log,
    prev_result,
    trace,
)


class Add:
    """What one ADD has taken so far, to undo it if the ADD fails (a context manager)."""

    def __init__(self, plugin: str, a: CmdArgs, job: ipam.Delegation | None) -> None:
        self.plugin, self.a, self.job = plugin, a, job  # job: the IPAM ADD, None = no IPAM
        self.fd = -1                 # CNI_NETNS
        self.node: Any = None        # netlink socket in the node's netns
        self.cont: Any = None        # netlink socket in the container's netns
        self.made = False            # the container veth exists: delete it on failure
        self.bridges: list[str] = []  # bridges this ADD created: deleted on failure if portless
        self.masq: ipmasq.Pending | None = None  # NAT rules were started: remove them on failure
        self.ipam_waited = False     # job.wait() was called: do not reap it again

    def open(self) -> None:
        """Open CNI_NETNS and one netlink socket in each namespace (see ``link``). Call it
        inside the ``with`` block: a missing netns must still give back the IPAM ADD."""
        self.fd = link.open_netns(self.a.netns)
        self.node = link.iproute()
        self.cont = link.iproute_in(self.fd)
        trace("netlink sockets open")

    def ipam_result(self) -> dict[str, Any]:
        """Wait for the IPAM plugin's ADD result; one without any address is an error (as
        upstream: "IPAM plugin returned missing IP config")."""
        assert self.job is not None
        self.ipam_waited = True
        r = self.job.wait()
        trace("IPAM answered")
        assert r is not None
        if not r["ips"]:
            raise CNIError(ERR_INTERNAL, "IPAM plugin returned missing IP config")
        return r

    def __enter__(self) -> "Add":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        try:
            if exc_type is not None:
                self.rollback()
        finally:
            self.close()
        return False  # the original error is the answer

    def rollback(self) -> None:
        """Undo in reverse, best effort: each step logs its own failure and goes on."""
        a = self.a
        if self.cont is not None and self.made:
            try:
                link.delete_link(self.cont, a.ifname)  # the host end dies with it
            except Exception as e:  # noqa: BLE001 - best effort, the original error matters
                log(self.plugin, f"rollback: {e}")
        if self.masq is not None:
            try:
                self.masq.wait(check=False)  # let running iptables-restore calls end first
                ipmasq.teardown(a.name, a.container_id)
            except CNIError as e:
                log(self.plugin, f"rollback: {e.msg}")
        job = self.job
        if job is not None:
            if not self.ipam_waited:
                job.reap()
            if job.succeeded:  # release only what this ADD got: a refused duplicate ADD must
                try:           # not free the addresses of the attachment that already exists
                    ipam.run(a, "DEL")
                except CNIError as e:
                    log(self.plugin, f"rollback: IPAM DEL: {e.msg}")
        # The bridge goes last, and only if this ADD created it and no port is on it now (an
        # ADD of another container may have joined it meanwhile): upstream leaves it, and a
        # config that can never work (a /33 subnet) left one more bridge on the host per try.
        for name in self.bridges if self.node is not None else []:
            try:
                br = link.link_by_name(self.node, name)
                if br is not None and not link.ports(self.node, br["index"]):
                    link.delete_link(self.node, name)
            except Exception as e:  # noqa: BLE001 - best effort, the original error matters
                log(self.plugin, f"rollback: bridge {name}: {e}")

    def close(self) -> None:
        for s in (self.cont, self.node):
            if s is not None:
                s.close()
        if self.fd >= 0:
            os.close(self.fd)


def delete(a: CmdArgs, with_ipam: bool, ip_masq: bool) -> None:
    """DEL of a veth attachment. SPEC.md "DEL": it must succeed when things are already gone,
    so each step tolerates it. The IPAM DEL and the NAT teardown start first and run while the
    container end is deleted (its peer in the node dies with it)."""
    prev = prev_result(a)
    job = ipam.Delegation(a, "DEL").start() if with_ipam else None
    masq = None
    if ip_masq:
        # by chain name (network + container ID), so it works without the container (plugins#810)
        masq = ipmasq.Teardown(a.name, a.container_id, prev, ipmasq.families_of(prev, a.conf))
    try:
        if a.netns:
            try:
                fd = link.open_netns(a.netns)
                try:
                    with link.iproute_in(fd) as cont:
                        cont.link_del_by_name(a.ifname)  # False = already gone: fine
                finally:
                    os.close(fd)
            except link.NetnsGone:
                pass  # the container is gone and its veth pair with it
    except BaseException:
        if job is not None:
            job.reap()
        if masq is not None:
            masq.finish()
        raise
    trace("container link deleted")
    if job is not None:
        job.wait()
        trace("IPAM released")
    if masq is not None:
        masq.finish()
        trace("NAT rules out")


def check(a: CmdArgs, with_ipam: bool, compare: Any) -> None:
    """CHECK of a veth attachment: ``compare(fd)`` reads the kernel state in CNI_NETNS (``fd``)
    and raises on the first difference from prevResult, while the IPAM plugin's CHECK runs
    alongside (SPEC.md "CHECK": the main plugin must also call its IPAM plugin)."""
    fd = link.open_netns(a.netns)
    try:
        with ipam.Alongside(a, "CHECK", with_ipam):
            compare(fd)
    finally:
        os.close(fd)


def gc(a: CmdArgs, with_ipam: bool, ip_masq: bool, log_as: str = "") -> None:
    """Spec 1.1.0 GC: forward to the IPAM plugin (§4 requires it) and drop the NAT chains of
    attachments that are not in ``cni.dev/valid-attachments``; ``log_as`` names the plugin
    that logs the removed chains ("" = silent)."""
    with ipam.Alongside(a, "GC", with_ipam):
        if ip_masq:
            from sandbox.net.plugins.host_local import valid_attachments

            gone = ipmasq.gc(a.name, {cid for cid, _ in valid_attachments(a.conf)})
            if gone and log_as:
                log(log_as, f"GC removed NAT chains {' '.join(gone)}")
