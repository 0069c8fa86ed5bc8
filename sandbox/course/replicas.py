"""Notebook 07b (seed slides 16–20, "you as an ops engineer"): ``example.com/app`` ×3 — three
replicas of one image, each a pod of its own on the kit's default network — and the slide's
"???" answered on live state: each has its own address; how do they find each other; what do
they share and what not.

Rows only; :mod:`sandbox.viz` draws them. The pods are recorded in the notebook's journal
(:meth:`sandbox.course.notebook.NotebookState.pod`) and stopped and removed with it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sandbox.errors import SandboxError

IMAGE = "example.com/reduce-worker"
APP = "reduce-worker"


class ReplicaError(SandboxError):
    """A replica could not be started or asked."""


class Replicas:
    """``count`` pods of one image, started through the notebook's state."""

    def __init__(self, state: Any, image: str = IMAGE, app: str = APP, count: int = 3) -> None:
        self.state, self.image, self.app, self.count = state, image, app, count
        self.uuids: list[str] = []
        self._store: Any = None
        self._inside: dict[str, dict[str, str]] = {}   # asked once per replica: hostname, kernel

    # -- start ----------------------------------------------------------------------------------
    def start(self) -> list[str]:
        """Build the lab images offline (Debian's busybox), then run the image ``count`` times."""
        from sandbox.image import catalog
        from sandbox.pod import stage0 as pod
        self._store = self.state.store()
        catalog.build(self.state.path / "catalog", import_to=self._store, progress=False)
        for _ in range(self.count):
            p = pod.run(self._store, [self.image], detach=True)
            self.state.pod(p)
            self.uuids.append(p.uuid)
        return self.uuids

    def _sh(self, uuid: str, script: str) -> str:
        from sandbox.pod import stage0 as pod
        cp = pod.enter(uuid, self.app, ["/bin/sh", "-c", script], capture=True, timeout=30)
        return (cp.stdout + cp.stderr).strip()

    def label(self, i: int) -> str:
        return f"replica {i + 1}"

    def _ask(self, uuid: str) -> dict[str, str]:
        """The replica's hostname and kernel release, asked from inside once."""
        if uuid not in self._inside:
            out = self._sh(uuid, "hostname; uname -r").splitlines()
            self._inside[uuid] = {"hostname": out[0] if out else "?",
                                  "kernel": out[1] if len(out) > 1 else "?"}
        return self._inside[uuid]

    # -- each its own address ----------------------------------------------------------------------
    def facts(self) -> list[dict[str, Any]]:
        """Per replica: pod UUID, hostname, netns, eth0's address and MAC (from the kernel)."""
        from sandbox.net import netns
        from sandbox.pod import stage0 as pod
        out = []
        for i, u in enumerate(self.uuids):
            st = pod.status(u)
            eth0 = next((l for l in netns.snapshot(st["netns"])["links"] if l["name"] == "eth0"), {})
            out.append({"replica": self.label(i), "pod": u, "hostname": self._ask(u)["hostname"],
                        "netns": st["netns"], "address": next((a for a in eth0.get("addrs", [])
                                                               if ":" not in a), ""),
                        "mac": eth0.get("mac", ""), "image": st["apps"][0]["imageID"]})
        return out

    def address_rows(self) -> list[list[str]]:
        return [[f["replica"], f["pod"][:8], f["hostname"], f["address"], f["mac"]]
                for f in self.facts()]

    # -- how do they find each other? ------------------------------------------------------------
    def ping_rows(self) -> list[list[str]]:
        """From replica 1, with busybox inside the pod: each other replica by its IP, then by its
        hostname."""
        facts = self.facts()
        asks = [(f"{facts[0]['replica']} → {f['replica']} {how}", target)
                for f in facts[1:] for how, target in (("by IP", f["address"].split("/")[0]),
                                                        ("by name", f["hostname"]))]
        # one shell in replica 1 for all of them, each answer between markers
        script = "; ".join(f"echo '#{k}'; ping -c1 -W1 {t} 2>&1; echo exit=$?"
                           for k, (_, t) in enumerate(asks))
        blocks = self._sh(self.uuids[0], script).split("#")[1:]
        rows = []
        for (label, target), block in zip(asks, blocks):
            lines = block.strip().splitlines()[1:]
            verdict = ("reply" if lines and lines[-1] == "exit=0" else
                       next((l for l in lines if "bad address" in l or "unknown host" in l),
                            "no reply"))
            rows.append([label, target, verdict])
        return rows

    def hosts_file(self, i: int = 0) -> str:
        return self._sh(self.uuids[i], "cat /etc/hosts")

    def publish_names(self) -> list[str]:
        """Play the missing piece: tell every replica the others' names and addresses (what a
        cluster's DNS or a service registry does), here by appending them to each replica's
        /etc/hosts. Returns the lines written."""
        facts = self.facts()
        lines = [f"{f['address'].split('/')[0]}\t{f['hostname']} {f['replica'].replace(' ', '-')}"
                 for f in facts]
        for u in self.uuids:
            self._sh(u, "cat >> /etc/hosts <<'EOF'\n" + "\n".join(lines) + "\nEOF")
        return lines

    # -- what is shared, what is not ---------------------------------------------------------------
    def shared_rows(self) -> list[list[Any]]:
        """[what, replica 1, replica 2, replica 3, shared by all?] from the pods' plans, the
        kernel (namespace inodes, cgroup, kernel release) and the runtime's status."""
        from sandbox.pod import perspective as podview
        from sandbox.pod import stage0 as pod
        facts = self.facts()
        cols: dict[str, list[Any]] = {}

        def add(what: str, values: list[Any]) -> None:
            cols[what] = values

        plans = []
        for u in self.uuids:
            _, d = pod.find(u)
            plans.append((d, json.loads((d / "stage1.json").read_text()) if (d / "stage1.json").exists()
                          else json.loads((d / "plan.json").read_text())))
        apps = [next(a for a in plan["apps"] if a["name"] == self.app) for _, plan in plans]
        add("image ID", [a["imageID"][:23] + "…" for a in apps])
        add("rendered tree (read-only, the overlay's lower layer)", [a["tree"] for a in apps])
        add("writable layer (the overlay's upper dir)",
            [str(d / "apps" / self.app / "upper") for d, _ in plans])
        add("pod UUID", [f["pod"][:8] for f in facts])
        add("hostname (UTS namespace)", [f["hostname"] for f in facts])
        add("eth0 address", [f["address"] for f in facts])
        add("eth0 MAC", [f["mac"] for f in facts])
        infos = [podview.inspect(u) for u in self.uuids]
        for t in ("net", "uts", "ipc", "pid", "mnt"):
            add(f"{t} namespace", [next((a["ns"].get(t) for a in i["apps"] if a["ns"]), None)
                                   for i in infos])
        add("cgroup", [self._cgroup(i) for i in infos])
        add("metadata service URL (with its token)", [pod.status(u)["metadataURL"] for u in self.uuids])
        add("network (CNI)", [", ".join(n["net"] for n in pod.status(u)["networks"]) for u in self.uuids])
        add("kernel (uname -r, asked inside)", [self._ask(u)["kernel"] for u in self.uuids])
        return [[what, *vals, len({json.dumps(v) for v in vals}) == 1] for what, vals in cols.items()]

    @staticmethod
    def _cgroup(info: dict[str, Any]) -> str:
        init = info.get("init") or {}
        pid = init.get("host_pid")
        try:
            lines = Path(f"/proc/{pid}/cgroup").read_text().splitlines()
        except (OSError, TypeError):
            return "?"
        # the v1 memory hierarchy where there is one (cgroups v1/hybrid: the kit's pods are
        # placed there), else the unified v2 one (0::/path)
        by = {l.split(":", 2)[1]: l.split(":", 2)[2] for l in lines if l.count(":") >= 2}
        return by.get("memory") or by.get("") or "?"

    def write_and_look(self) -> list[list[str]]:
        """Replica 1 writes /tmp/only-mine; each replica looks for it; where it landed."""
        from sandbox.pod import stage0 as pod
        rows = []
        for i, u in enumerate(self.uuids):
            write = "echo written by replica 1 > /tmp/only-mine; " if i == 0 else ""
            seen = self._sh(u, write + "cat /tmp/only-mine 2>/dev/null || echo '(no such file)'")
            _, d = pod.find(u)
            upper = d / "apps" / self.app / "upper" / "tmp" / "only-mine"
            rows.append([self.label(i), seen, "yes" if upper.exists() else "no"])
        return rows

    def nodes(self) -> tuple[str, list[str]]:
        """The node netns the default network lives in, and each replica's netns."""
        from sandbox.pod import stage0 as pod
        return pod.node_name(), [pod.status(u)["netns"] for u in self.uuids]
