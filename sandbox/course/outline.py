"""What each notebook promises: its learning objectives, what comes before it, and its time.

The objectives and prerequisites are written here once; every notebook's opening cell is
written from them (:func:`header_markdown`, by ``python -m sandbox.course.outline --write``, which
touches only that one cell, id ``workshop-header``), and the course site's index and
docs/instructor.md use the same figures. The minutes are *measured* (:mod:`sandbox.course.timing`)
and kept in ``docs/course-times.json``; tests fail when a header, the guide's agendas and that
file disagree.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from sandbox import config

HEADER_ID = "workshop-header"
TOOLBAR_ID = "workshop-toolbar"


@dataclass(frozen=True)
class Outline:
    name: str                     # the notebook's file name without .ipynb
    objectives: tuple[str, ...]   # 3–5 "you will …" lines
    before: tuple[str, ...]       # notebooks (names) to have done first

    @property
    def minutes(self) -> int:
        return minutes(self.name)


NOTEBOOKS: dict[str, Outline] = {o.name: o for o in [
    Outline("00-welcome", (
        "find your way around the kit: the library, the `sandbox` command, notebooks and labs",
        "check this machine with `sandbox doctor` and read what each line asks you to do",
        "open the live state view and watch what the kit makes appear and disappear",
        "see where each slide of the talk is taught, and where you stand in the course",
    ), ()),
    Outline("01-image-format", (
        "build an ACI (a tar of `manifest` + `rootfs/`) and read every entry of the archive",
        "compute an image ID by hand: SHA-512 of the *uncompressed* tar",
        "predict, then see, what one flipped byte and what compression do to the ID",
        "store images by content and look them up by name and labels",
    ), ("00-welcome",)),
    Outline("02-rendering", (
        "resolve an image's dependencies into the order their layers are applied",
        "render a filesystem layer by layer and trace which image wrote each path",
        "predict what a `pathWhitelist` removes, then check it against the render",
        "reuse rendered trees from the tree store and give each run a clean copy",
    ), ("01-image-format",)),
    Outline("03-signing-and-trust", (
        "sign an ACI with a detached OpenPGP signature and see exactly which bytes are hashed",
        "trust a key for a name prefix, and see an untrusted or tampered image refused",
        "follow Mallory's attacks and say which check stops each one",
        "revoke a key and explain why the revocation's reason decides what stays valid",
    ), ("01-image-format",)),
    Outline("04-discovery", (
        "publish images on an offline discovery server and read its meta tags",
        "expand an app string into URLs with the discovery templates",
        "fetch the way appc asks: signature first, verify, then import",
        "see why the fetched image must be the one that was asked for",
    ), ("03-signing-and-trust",)),
    Outline("05-namespaces", (
        "create a network namespace the slide's way: `touch`, then `unshare -n mount --bind`",
        "look inside a new namespace and predict what it holds",
        "enter a namespace with `setns(2)` and see that it moves one thread",
        "make a node namespace that plays the host for CNI",
    ), ("00-welcome",)),
    Outline("06-cni", (
        "describe a network in a CNI configuration and run ADD through a runtime",
        "find what each step left behind: the runtime's cache and the plugins' own state",
        "predict what DEL removes (and what it leaves), then check the kernel",
        "compare the kit's plugins with upstream's on the same configuration",
    ), ("05-namespaces",)),
    Outline("06b-cni-beyond-one-bridge", (
        "see how a runtime finds a plugin by its `type` on `CNI_PATH`",
        "compare bridge, ptp, macvlan and ipvlan as the kernel shows them",
        "route pods across two nodes and see which address arrives",
        "allocate addresses three ways — a fixed block, DHCP, an SQL table — and release them",
        "attach one container to two networks, then leave one",
    ), ("06-cni",)),
    Outline("07-pods", (
        "run the seed's three-app pod and ask the same questions from the host and from each app",
        "tell which namespaces the apps share and which filesystem each one gets",
        "read the pod as the kernel sees it and have appc's ACE validator judge it",
        "stop and garbage-collect the pod and check nothing is left",
    ), ("02-rendering", "06-cni")),
    Outline("07b-replicas", (
        "run one image as three replicas, each with its own address",
        "find out how replicas reach each other — by address, and why not by name",
        "tell what replicas share (the image, the rendered tree) and what each keeps to itself",
    ), ("07-pods",)),
    Outline("08-oci", (
        "export an ACI to an OCI image layout and compare one sha512 ID with OCI's sha256 DAG",
        "have skopeo, umoci and runc accept what the kit wrote",
        "convert OCI back to an ACI and say what survives the round trip",
    ), ("01-image-format", "07-pods")),
    Outline("09-cni-vs-cnm", (
        "name CNM's network, endpoint and sandbox in a setup you made with CNI",
        "run a CNM remote driver and compare its calls with CNI's plugin execs",
        "say who configures the container's namespace in each model",
        "weigh the slides' conclusion with numbers measured in this session",
    ), ("06-cni",)),
]}


def times_path(root: Path | None = None) -> Path:
    return (root or config.project_root()) / "docs" / "course-times.json"


def load_times(root: Path | None = None) -> dict[str, dict]:
    """``docs/course-times.json``: per notebook and lab, the measured parts and the minutes."""
    try:
        return json.loads(times_path(root).read_text())
    except (OSError, ValueError):
        return {}


def minutes(name: str, root: Path | None = None) -> int:
    """The measured time of notebook (or ``lab-N``) ``name``, in minutes (0 if not measured)."""
    return int(load_times(root).get(name, {}).get("minutes", 0))


def time_parts(t: dict) -> str:
    """How a measured time is made up, in words."""
    parts = [f"its cells run in {t.get('run_s', 0)} s on a 2-core machine"]
    for key, what in (("read_s", "reading"), ("look_s", "looking at the outputs"),
                      ("predict_s", "predicting"), ("quiz_s", "the self-check"),
                      ("todo_s", "the TODO cells")):
        if t.get(key):
            parts.append(f"{what} {max(1, round(t[key] / 60))} min")
    return "; ".join(parts)


def header_markdown(name: str, root: Path | None = None) -> str:
    """The opening cell of notebook ``name``: objectives, prerequisites, time."""
    o = NOTEBOOKS[name]
    t = load_times(root).get(name, {})
    before = ", ".join(f"[{b}]({b}.ipynb)" for b in o.before) or "nothing: start here"
    lines = ["**In this notebook you will**", ""]
    lines += [f"- {obj}" for obj in o.objectives]
    lines += ["", f"**Before this one:** {before}.", "",
              f"**Time:** about {t.get('minutes', '?')} minutes — {time_parts(t)} "
              "(docs/instructor.md, \"How the times were measured\").", "",
              "**Stuck?** The bar below opens the live state view, `sandbox doctor` (the "
              "environment checks) and your progress."]
    return "\n".join(lines)


# --- the cells the workshop adds to every notebook -----------------------------------------------
# (kind, anchor, text): a markdown cell placed right after the first markdown cell that starts
# with ``anchor`` (else after the toolbar, so a renamed heading never loses a box).
# kind "predict": a "Predict, then run" prompt before the cells whose outcome is the lesson;
# kind "trouble": what to do when the next cells fail for a reason outside the notebook.

def _trouble(symptom: str, check: str, fix: str) -> str:
    cmd = f"sandbox doctor {check}".strip()
    return (f"> **If the next cells fail** {symptom}: run `{cmd}` in a terminal "
            f"(or the **doctor** button at the top). {fix}")


EXTRA: dict[str, list[tuple[str, str, str]]] = {
    "00-welcome": [
        ("md", "<## Resetting the machine", "## The live state view\n\nWhat has the kit made on "
         "this machine right now? The state view reads it at each **Refresh** (or every 3 s): "
         "pods and their apps, the kit's network namespaces with their links and addresses, its "
         "links on the host, CNI cache entries and IPAM leases, trusted keys, rendered trees and "
         "clean copies, mounts, lab workspaces and notebook state. Whatever appeared since the "
         "last refresh is marked **new**; whatever went away is struck through. Every notebook "
         "opens it from the bar under its title — keep it beside the notebook while you run "
         "cells (right-click the output, *Create New View for Cell Output*)."),
        ("code", "<## Resetting the machine", "from sandbox.viz.state import state_view\n\n"
         "state_view()"),
        ("md", "<## Resetting the machine", "## Where you stand\n\nNotebooks you opened, "
         "self-check questions you answered right, lab checks passed — read from a small file "
         "in the state directory (`progress.json`); nothing leaves this machine. "
         "`sandbox lab list` shows the labs' part in a terminal."),
        ("code", "<## Resetting the machine", "from sandbox.viz.course import course_overview\n\n"
         "course_overview()"),
        ("trouble", "## What this kit is", _trouble(
            "with `PermissionError`, `Operation not permitted` or a missing tool",
            "", "Each line names one check and its fix: root, kernel features (netns, overlay, "
            "cgroups, openat2), tools, the state directory, the clock, a proxy, and what earlier "
            "sessions left. Run it first, on the day, on every machine.")),
    ],
    "01-image-format": [
        ("predict", "## 6. Flip one byte", "**Predict, then run:** you flip *one bit* of the "
         "uncompressed tar. How many of the ID's 128 hex digits change — one, a few, or about half?"),
        ("predict", "## 7. Compression", "**Predict, then run:** the same tar compressed with "
         "`xz` instead of `gzip`. Will the *file's* SHA-512 change? Will the *image ID*?"),
        ("trouble", "## 9. The lab catalogue", _trouble(
            "with `Read-only file system`, `No space left on device` or `Permission denied` under "
            "the state directory", "state", "Point `SANDBOX_DIR` at a writable directory with a "
            "gigabyte free, or run `sandbox gc`.")),
    ],
    "02-rendering": [
        ("predict", "## 4. Step 3", "**Predict, then run:** `worker-backup` has a "
         "`pathWhitelist`. Will `/bin/sh` from its busybox dependency survive rendering? Will "
         "`/etc/passwd`?"),
        ("predict", "## 5. The tree store", "**Predict, then run:** render the same image a "
         "second time. Will anything be extracted?"),
        ("trouble", "## 6. A clean copy", _trouble(
            "with `mount: unknown filesystem type 'overlay'` or `Operation not permitted`",
            "overlay", "`modprobe overlay` as root; without overlayfs the kit falls back to "
            "plain copies (slower, same result).")),
    ],
    "03-signing-and-trust": [
        ("trouble", "## 1. Alice makes a key", _trouble(
            "with a key or signature \"created in the future\", \"not yet valid\" or \"expired\"",
            "clock", "The machine's clock is wrong: set it (`date -s 'YYYY-MM-DD HH:MM'`; in the "
            "VM `vagrant reload`), then run the notebook again from the top.")),
        ("predict", "## 4. Mallory", "**Predict, then run:** Mallory changes one byte of the image "
         "and keeps Alice's signature beside it. Which check stops her: the trust store, the "
         "signature, or nothing?"),
        ("predict", "### 5a", "**Predict, then run:** Alice *retires* her key (reason: "
         "superseded). Does last month's signature on `hello-1.0.0.aci` still verify?"),
    ],
    "04-discovery": [
        ("trouble", "## 2. An offline discovery server", _trouble(
            "with a timeout, `Connection refused` or `407 Proxy Authentication Required`",
            "proxy", "A proxy in the environment must leave 127.0.0.1 alone: "
            "`export no_proxy=127.0.0.1,localhost`, then restart the kernel. (Behind a "
            "TLS-inspecting proxy the *installation* needs its CA: LAB_EXTRA_CA_DIR, docs/vm.md.)")),
        ("predict", "## 5. The image must be", "**Predict, then run:** you ask for "
         "`localhost/hello:1.0.0,channel=beta`; the server's image has no `channel` label. "
         "Will fetch import it?"),
    ],
    "05-namespaces": [
        ("trouble", "## `unshare -n mount --bind", _trouble(
            "with `PermissionError: [Errno 1] Operation not permitted`", "root netns",
            "Namespaces need root: start JupyterLab as root (`make lab` in the VM does).")),
        ("predict", "## What is inside a new network namespace?", "**Predict, then run:** which "
         "links does a brand-new network namespace hold, are they up, and will `127.0.0.1` answer "
         "a ping?"),
        ("predict", "## Entering a namespace", "**Predict, then run:** after `setns(2)`, is the "
         "whole Python process inside `myns`, or only one thread?"),
    ],
    "06-cni": [
        ("trouble", "## A runtime", _trouble(
            "with `failed to find plugin`, `File exists` or an address already in use",
            "tools leftovers", "Install Debian's `containernetworking-plugins`; remove what an "
            "earlier session left with `sandbox reset` (it lists everything first).")),
        ("predict", "## Plugins manage their own state", "**Predict, then run:** where did "
         "host-local write the address it gave c1? Guess the directory and the file's name."),
        ("predict", "## DEL: remove", "**Predict, then run:** DEL both containers. Which will be "
         "gone afterwards: the veth pairs, the addresses' files, the cache entries, the `cni0` "
         "bridge?"),
    ],
    "07-pods": [
        ("trouble", "## Run the pod", _trouble(
            "with `is open in another kernel`, `File exists` or a pod that never starts",
            "kernels leftovers cgroups", "A kernel that died left state: run this notebook's "
            "first cell again (it removes what the dead kernel made), or `sandbox reset`.")),
        ("predict", "### Filesystem", "**Predict, then run:** `reduce-worker` writes `/tmp/mine`. "
         "Will `worker-backup` see the file?"),
        ("predict", "### PID 1", "**Predict, then run:** what is PID 1 inside the pod — the first "
         "app, `/bin/sh`, the host's init, or something else?"),
    ],
    "08-oci": [
        ("trouble", "## 3. The real tools accept it", _trouble(
            "with `No such file or directory: 'skopeo'` (or `umoci`, `runc`)", "tools",
            "`apt-get install skopeo umoci runc` (`make install` does it).")),
        ("predict", "## 5. The way back", "**Predict, then run:** export to OCI, then import the "
         "layout back into an ACI. Same image ID as the original, or a new one?"),
    ],
    "09-cni-vs-cnm": [
        ("trouble", "## 2. A remote driver", _trouble(
            "with `Address already in use`, a socket that does not answer, or a namespace that "
            "exists", "kernels leftovers", "A kernel that died left its driver's namespace: "
            "run the first cell again, or `sandbox reset`.")),
        ("predict", "## 5. Who configured", "**Predict, then run:** in CNM, who put the address "
         "on the container's interface: the remote driver, or libnetwork's controller?"),
    ],
}

_CLEANUP_HEADINGS = ("## Clean up", "## Stop", "## Clean")
_CLEANUP_CALLS = ("rmtree(work", "nb.close()", "session.close()", "pod.gc(")


def _lines(text: str) -> list[str]:
    lines = text.split("\n")
    return [l + "\n" for l in lines[:-1]] + [lines[-1]]


def _md(cid: str, text: str) -> dict:
    return {"cell_type": "markdown", "id": cid, "metadata": {}, "source": _lines(text)}


def _code(cid: str, text: str) -> dict:
    return {"cell_type": "code", "execution_count": None, "id": cid, "metadata": {},
            "outputs": [], "source": _lines(text)}


def workshop_cells(name: str, nb: dict, root: Path | None = None) -> dict:
    """``nb`` (notebook JSON) with the workshop's cells, and only them, (re)placed: the header
    and toolbar after the title, the boxes and prompts after their anchors, the self-check before
    the clean-up section. Every other cell stays exactly as it was."""
    from sandbox.course import selfchecks
    cells = [c for c in nb["cells"] if not str(c.get("id", "")).startswith("workshop-")]

    def src(c: dict) -> str:
        s = c.get("source", "")
        return "".join(s) if isinstance(s, list) else s

    top = [_md(HEADER_ID, header_markdown(name, root)),
           _code(TOOLBAR_ID, f"from sandbox.viz.course import toolbar\n\ntoolbar({name!r})")]
    cells[1:1] = top
    after_top = 3
    for k, (kind, anchor, text) in enumerate(EXTRA.get(name, [])):
        cell = (_code if kind == "code" else _md)(f"workshop-{kind}-{k}", text)
        before = anchor.startswith("<")      # "<## Heading": just before that cell
        anchor = anchor.lstrip("<")
        at = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                   and src(c).lstrip().startswith(anchor)), None)
        if at is None:
            cells.insert(after_top, cell)
            after_top += 1
        else:
            cells.insert(at if before else at + 1, cell)
    if name in selfchecks.QUIZZES:
        args = "".join(f", {a}={a}" for a in selfchecks.LIVE.get(name, ()))
        quiz = [_md("workshop-selfcheck-title", "## Self-check\n\nA few questions on what you "
                    "just did; some are checked against what this notebook made. A wrong answer "
                    "is explained, and so is a right one."),
                _code("workshop-selfcheck", "from sandbox.viz.quiz import self_check\n\n"
                      f"self_check({name!r}{args})")]
        at = next((i for i, c in enumerate(cells) if c["cell_type"] == "markdown"
                   and src(c).lstrip().startswith(_CLEANUP_HEADINGS) and i > 2), None)
        if at is None:   # no clean-up heading: before the last cell that removes the state
            ends = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
                    and any(k in src(c) for k in _CLEANUP_CALLS)]
            at = len(cells) if not ends else (
                ends[-1] - 1 if cells[ends[-1] - 1]["cell_type"] == "markdown" else ends[-1])
        cells[at:at] = quiz
    return {**nb, "cells": cells}


def write(root: Path | None = None, names: list[str] | None = None) -> list[Path]:
    """Rewrite the workshop's cells in the notebooks (all, or ``names``); returns those changed."""
    root = root or config.project_root()
    changed = []
    for name in names or list(NOTEBOOKS):
        path = root / "notebooks" / f"{name}.ipynb"
        if not path.is_file():
            continue
        raw = path.read_text()
        new = json.dumps(workshop_cells(name, json.loads(raw), root), indent=1,
                         ensure_ascii=False) + "\n"
        if new != raw:
            path.write_text(new)
            changed.append(path)
    return changed


# --- the instructor's agendas (docs/instructor.md, between the agenda markers) -------------------

# (item, what happens): a notebook name, "lab-N", or a fixed block with its minutes
AGENDAS: dict[str, list[tuple[str, str]]] = {
    "half day": [
        ("setup:15", "everyone runs `sandbox doctor`; fix what it reports (room set-up below)"),
        ("00-welcome", "the kit, the story, the state view"),
        ("01-image-format", "an image is a tar; its ID is a hash"),
        ("lab-1", "build an ACI, hash it by hand"),
        ("03-signing-and-trust", "Signed By: Alice; Mallory's attacks"),
        ("break:15", "break"),
        ("05-namespaces", "CNI step 1: a namespace the slide's way"),
        ("06-cni", "ADD, the cache, plugins' state, DEL"),
        ("07-pods", "the app's perspective"),
        ("wrap:10", "questions; what to read next (the static site)"),
    ],
    "full day": [
        ("setup:20", "everyone runs `sandbox doctor`; fix what it reports (room set-up below)"),
        ("00-welcome", "the kit, the story, the state view"),
        ("01-image-format", "an image is a tar; its ID is a hash"),
        ("lab-1", "build an ACI, hash it by hand"),
        ("02-rendering", "dependencies, layers, the whitelist, the tree store"),
        ("lab-3", "predict a render"),
        ("break:15", "break"),
        ("03-signing-and-trust", "Signed By: Alice; Mallory's attacks; revocation"),
        ("lab-2", "sign, trust a prefix, refuse a tampered copy"),
        ("04-discovery", "from a name to a verified image"),
        ("lunch:60", "lunch"),
        ("05-namespaces", "CNI step 1: a namespace the slide's way"),
        ("lab-4", "a veth pair between two namespaces"),
        ("06-cni", "ADD, the cache, plugins' state, DEL"),
        ("lab-5", "your own IPAM plugin"),
        ("break:15", "break"),
        ("07-pods", "the app's perspective"),
        ("lab-6", "the seed's pod from inside"),
        ("08-oci", "the road to OCI"),
        ("09-cni-vs-cnm", "CNI vs CNM"),
        ("wrap:15", "questions; what to read next (the static site)"),
    ],
}


def agenda_rows(kind: str, start: str = "09:00", root: Path | None = None) -> list[tuple[str, int, str, str]]:
    """(start time, minutes, item, what happens) for each block of an agenda."""
    times = load_times(root)
    h, m = (int(x) for x in start.split(":"))
    t = h * 60 + m
    rows = []
    for item, what in AGENDAS[kind]:
        if ":" in item:
            label, mins = item.split(":")
            minutes_ = int(mins)
            name = {"setup": "set-up", "break": "break", "lunch": "lunch", "wrap": "wrap-up"}[label]
        else:
            minutes_ = int(times.get(item, {}).get("minutes", 0))
            name = item if not item.startswith("lab-") else f"lab {item[4:]}"
        rows.append((f"{t // 60:02d}:{t % 60:02d}", minutes_, name, what))
        t += minutes_
    return rows


def agenda_markdown(root: Path | None = None) -> str:
    out = []
    used = {item for items in AGENDAS.values() for item, _ in items}
    for kind in AGENDAS:
        rows = agenda_rows(kind, root=root)
        total = sum(r[1] for r in rows)
        learning = sum(r[1] for r in rows if r[2] not in ("set-up", "break", "lunch", "wrap-up"))
        out += [f"### {kind.capitalize()} ({total // 60} h {total % 60:02d} min)", "",
                "| start | min | block | what happens |", "|---|---|---|---|"]
        for start, mins, name, what in rows:
            link = f"[{name}](../notebooks/{name}.ipynb)" if name[:2].isdigit() else name
            out.append(f"| {start} | {mins} | {link} | {what} |")
        out += ["", f"Notebooks and labs: {learning} min, each the measured estimate in its own "
                "header (docs/course-times.json); with set-up, breaks and wrap-up: "
                f"{total} min.", ""]
    times = load_times(root)
    extra = [f"{n} ({times[n]['minutes']} min)" if not n.startswith("lab-") else
             f"lab {n[4:]} ({times[n]['minutes']} min)"
             for n in sorted(times) if n not in used and times[n].get("minutes")]
    if extra:
        out += ["Not in these agendas (a second day, or for those who finish early): "
                + ", ".join(extra) + ".", ""]
    return "\n".join(out).rstrip() + "\n"


AGENDA_START, AGENDA_END = "<!-- agenda: written by python -m sandbox.course.outline --write -->", \
    "<!-- /agenda -->"


def write_instructor(root: Path | None = None) -> bool:
    """Rewrite the agendas block of docs/instructor.md; True if it changed."""
    path = (root or config.project_root()) / "docs" / "instructor.md"
    text = path.read_text()
    new = _replace_block(text, AGENDA_START, AGENDA_END, agenda_markdown(root))
    new = _replace_block(new, SLIDES_START, SLIDES_END, slides_markdown(root))
    if new != text:
        path.write_text(new)
    return new != text


# --- talking points per slide (docs/instructor.md, between the slides markers) ------------------
# One sentence each: what to say while the cell that shows it is on screen
# (the cells: docs/slide-coverage.json).
TALKING: dict[int, str] = {
    7: "We want to ship software the same way everywhere: what must an image be for that?",
    8: "Start from the learner: everyone here has shipped code somewhere.",
    9: "As a software engineer you care about what runs: your code and what it needs.",
    10: "Every language ends up as files on disk plus a command: that is all an image holds.",
    11: "A container image = a filesystem + what to run; in appc, a tar of `manifest` + `rootfs/`.",
    12: "Java needs a JVM and libc: images build on others — dependencies, applied in order.",
    13: "Python, same story: layers are extracted in the order resolution gives.",
    14: "A name for humans, an ID for machines: the ID is the SHA-512 of the uncompressed tar.",
    15: "\"Signed By: Alice\": a detached OpenPGP signature over the archive's bytes.",
    16: "Now the ops side: you run images other people built.",
    17: "You need to *find* an image by name: discovery turns a name into URLs.",
    18: "Several copies of one app: a pod per replica, each with its own namespaces.",
    19: "The kernel's view of a pod: shared pid/net/ipc/uts, one mount namespace per app.",
    20: "Names with labels (version, os, arch) pick the right image among many.",
    21: "Many formats, many runtimes: the case for a standard.",
    22: "An image format is a contract between builders and runtimes.",
    23: "appc's answer: a spec small enough to read in an afternoon (the kit implements it).",
    24: "Where Docker's format stood: layers addressed by random IDs, no content hash.",
    25: "Docker 2014: no signing, no discovery — compare with what you just did.",
    29: "rkt: a runtime built on the spec, security first (the kit plays its role).",
    30: "Images were often shell scripts and tarballs: deb2aci-style builds, like the catalogue.",
    31: "A year later: Docker v2.2 adds content addressing with sha256.",
    32: "v2.2's manifest points to config and layer digests: a Merkle DAG — export and see.",
    39: "Where this is going: OCI image and runtime specs; runc runs a bundle.",
    40: "Networking: a container needs an interface and an address in its own namespace.",
    41: "Who wires the namespace? Either the runtime, or plugins it calls.",
    42: "The pod model: one network namespace, every app shares `lo` and `eth0`.",
    43: "Bridge, macvlan, ptp…: many ways to connect; the plugin decides.",
    44: "IP allocation is its own plugin (IPAM): host-local writes one file per address.",
    47: "The user configures a network as JSON; the runtime only passes it along.",
    48: "CNI step 1: `touch myns; unshare -n mount --bind /proc/self/ns/net myns` — do it live.",
    51: "Who uses CNI: rkt, Kubernetes, Cloud Foundry, Mesos…",
    52: "Docker's answer: the Container Network Model.",
    53: "CNM's three objects — network, endpoint, sandbox — mapped onto what you built.",
    54: "CNM serves cluster and local networking through one controller.",
    55: "\"Batteries included\": drivers built into the daemon.",
    56: "Remote plugins: a long-running HTTP service; libnetwork configures the sandbox itself.",
    57: "Who maintains what: CNM by Docker; CNI by a wider community.",
    58: "Compare the two models side by side, with the calls you recorded.",
    59: "The slides' conclusion: CNI is simpler — weigh it with the numbers measured here.",
}

SLIDES_START, SLIDES_END = "<!-- slides: written by python -m sandbox.course.outline --write -->", \
    "<!-- /slides -->"


def slides_markdown(root: Path | None = None) -> str:
    from sandbox.course import slides
    cov = slides.load_coverage(slides.coverage_path(root))
    out = ["| slide | on the slide | say | show it with |", "|---|---|---|---|"]
    for k, v in sorted(cov["slides"].items(), key=lambda kv: int(kv[0])):
        shows = []
        for where, heading in v.get("sections", []):
            label = heading.lstrip("#").strip().replace("|", "/")
            shows.append(f"[{Path(where).stem if where.startswith('notebooks/') else where}]"
                         f"(../{where}) § {label}" if where.startswith("notebooks/")
                         else f"`{where}` § {label}")
        title = v.get("title", "").replace("|", "/")
        out.append(f"| {k} | {title} | {TALKING.get(int(k), '')} | {'<br>'.join(shows)} |")
    return "\n".join(out) + "\n"


def _replace_block(text: str, start: str, end: str, body: str) -> str:
    a, b = text.index(start) + len(start), text.index(end)
    return text[:a] + "\n\n" + body + "\n" + text[b:]


if __name__ == "__main__":
    import sys
    if sys.argv[1:2] != ["--write"]:
        print("usage: python -m sandbox.course.outline --write [NAME...]", file=sys.stderr)
        sys.exit(2)
    for p in write(names=sys.argv[2:] or None):
        print("wrote", p)
    if write_instructor():
        print("wrote docs/instructor.md (agendas)")
