"""The self-check questions at the end of each notebook (see :mod:`sandbox.course.quiz`).

One function per notebook, named after it in :data:`QUIZZES`; it takes the notebook's live objects
as keyword arguments (all optional: without them the questions still exist, so the course
overview can count them) and returns 3–5 questions. A typed value that depends on what the
notebook made is a function evaluated against the live state, never a constant.
"""
from __future__ import annotations

from typing import Any, Callable

from sandbox.course.quiz import Question, Quiz, QuizError


# Each function below is a table of Question(...) rows, one per notebook: the same shape
# throughout by design, the questions are the data.
def _welcome(**live: Any) -> list[Question]:
    return [
        Question(
            "doctor", "A cell fails with `PermissionError: [Errno 1] Operation not permitted` "
            "while it creates a network namespace. What do you run first?",
            "`sandbox doctor` runs the environment checks (root, netns, overlay, cgroups, tools, "
            "state dir, leftovers) and prints one line each with the fix; a namespace needs root "
            "(CAP_SYS_ADMIN), which its `root` and `netns` lines check.",
            answer=1,
            choices=["`sandbox reset`", "`sandbox doctor`", "restart JupyterLab",
                     "`pip install --upgrade sandbox`"],
            why_not={0: "`sandbox reset` removes what the kit made; it cannot give this process "
                        "the right to make namespaces.",
                     2: "A new kernel runs as the same user with the same rights.",
                     3: "The kit is installed from this checkout; nothing is missing from it."}),
        Question(
            "state-view", "You ran a cell that should have created a veth pair. Where do you see, "
            "right now, whether it exists and in which namespace?",
            "The live state view reads the kernel and the kit's files at each refresh: the "
            "namespaces with their links and addresses, CNI cache entries, leases, pods, keys, "
            "trees and mounts — new things are marked, gone things struck through.",
            answer=2,
            choices=["in the notebook's last output", "in `docs/course.md`",
                     "in the live state view (Refresh)", "in the progress file"],
            why_not={0: "An output shows what a cell printed when it ran, not what exists now.",
                     1: "The docs describe the kit; they do not read this machine.",
                     3: "The progress file records what you did in the course, not kernel state."}),
        Question(
            "lab-solution", "How do you get a lab's reference solution?",
            "Solutions are not stored beside the student notebook; `sandbox lab solution N` writes "
            "`labs/NN-…/solution.ipynb` when you ask (try the lab first).",
            answer=0,
            choices=["`sandbox lab solution N`", "open `labs/NN-…/solution/lab.ipynb`",
                     "run the check cell until it gives up", "it is not available"],
            why_not={1: "There is no solution folder in the repository any more: nothing to "
                        "peek at by accident.",
                     2: "The check only gives hints for what is still missing.",
                     3: "It is available, on request."}),
        Question(
            "progress", "Where does the course overview read your progress from?",
            "From `$SANDBOX_DIR/progress.json` on this machine: notebooks visited, quiz answers and "
            "lab checks are written there, and nothing leaves the machine.",
            answer="progress.json",
            hint="It is a small JSON file in the state directory.",
            normalize=lambda v: str(v).strip().rsplit("/", 1)[-1]),
    ]


def _basename(value: Any) -> str:
    return " ".join(str(value).strip().split()).rstrip("/").rsplit("/", 1)[-1]


def _image_format(hello_aci: Any = None, **_: Any) -> list[Question]:
    def short() -> str:
        from sandbox.image import aci
        return aci.image_id(hello_aci)[len("sha512-"):][:12]
    return [
        Question(
            "what-is-hashed", "An appc image ID is `sha512-` followed by the SHA-512 of …",
            "… the *uncompressed* tar (aci.md, Image ID): the ID names the content, whatever "
            "compression carried it.",
            answer=1,
            choices=["the .aci file as it is on disk", "the uncompressed tar archive",
                     "the manifest only", "the rootfs files, sorted by path"],
            why_not={0: "Then the same image gzip'ed twice (or with xz) would get two IDs.",
                     2: "Two images with one manifest and different files would share an ID.",
                     3: "The tar holds the manifest too, and the ID is over the archive's bytes."}),
        Question(
            "xz", "You compress the same tar with `xz` instead of `gzip`. The image ID …",
            "… stays the same: it is computed after decompressing (the file's own hash changes).",
            answer=0,
            choices=["stays the same", "changes", "depends on the compression level"],
            why_not={1: "The file's SHA-512 changes; the image ID is over the uncompressed tar.",
                     2: "The level changes the compressed bytes only."}),
        Question(
            "my-id", "Type the first 12 hex digits (after `sha512-`) of the image ID of the "
            "`hello.aci` you built.",
            "The kit read it from your archive just now (`aci.image_id`): the same digits "
            "`sandbox image id` prints.",
            answer=short, hint="Look at the output of the build cell, or run "
            "`aci.image_id(hello_aci)`.", normalize=lambda v: str(v).strip().lower()[:12]),
        Question(
            "store", "Why can the store find an image by the first digits of its ID?",
            "The store is content-addressed: each image is kept under its ID, so an ID prefix "
            "names it (and importing the same bytes twice changes nothing).",
            answer=2,
            choices=["it keeps a database of names", "it searches every archive's manifest",
                     "images are stored under their ID (content addressing)"],
            why_not={0: "Names and labels are looked up from the stored manifests, IDs are not.",
                     1: "That would be slow; the ID is the key itself."}),
    ]


def _rendering(trace: Any = None, **_: Any) -> list[Question]:
    return [
        Question(
            "paths", "How many paths does worker-backup's rendered rootfs hold?",
            "Counted from the render trace of your tree (`len(trace.final_paths())`): the "
            "dependencies' files after the pathWhitelist removed what it does not list.",
            answer=lambda: str(len(trace.final_paths())), hint="The cell after "
            "\"Without a whitelist\" prints it.", normalize=lambda v: str(v).strip()),
        Question(
            "whitelist", "What does a non-empty `pathWhitelist` do when the app is rendered?",
            "After every layer is extracted, every path not in the list is removed (ace.md, "
            "Filesystem Setup): the whitelist decides what the app sees, whoever wrote it.",
            answer=1,
            choices=["it stops dependencies from being fetched",
                     "it removes every path it does not list, after all layers",
                     "it makes the listed paths read-only"],
            why_not={0: "Dependencies are still resolved and extracted; the whitelist filters "
                        "the result.",
                     2: "It says nothing about permissions."}),
        Question(
            "store-hit", "You render the same image a second time. What happens?",
            "The tree store finds the rendered tree by its key and extracts nothing "
            "(`hit` is True); `verify` re-hashes it to prove it was not changed.",
            answer=0,
            choices=["the stored tree is reused: nothing is extracted",
                     "every layer is extracted again", "only the image's own layer is extracted"],
            why_not={1: "That is the work the tree store saves.",
                     2: "The key covers the whole dependency graph: all or nothing."}),
        Question(
            "clean-copy", "Why does each run get a clean copy instead of the rendered tree?",
            "So a run's writes (or deletions) never reach the tree or another run: the overlay "
            "(or copy) takes them, and closing it throws them away.",
            answer=2,
            choices=["to make it faster", "because the tree is read-only on disk",
                     "so one run's changes never reach the tree or another run"],
            why_not={0: "A copy costs time; an overlay costs little, but it is not the reason.",
                     1: "The tree is an ordinary directory; the kit protects it by not running "
                        "in it."}),
    ]


def _signing(alice: Any = None, **_: Any) -> list[Question]:
    return [
        Question(
            "covered", "What do the signature's hashed bytes cover?",
            "The .aci file's bytes, then the signature packet's hashed subpackets and trailer "
            "(RFC 4880 §5.2.4): change one byte of either and the digest changes.",
            answer=0,
            choices=["the .aci file's bytes plus the signature packet's trailer",
                     "the manifest only", "the image ID string", "the rootfs files"],
            why_not={1: "Then the files could change under a valid signature.",
                     2: "appc signs the archive file itself, not its ID.",
                     3: "The signature is over the archive as a whole."}),
        Question(
            "prefix", "Bob trusts Mallory's key for `example.com/hell`. Her "
            "`example.com/hello` …",
            "… is refused: a prefix matches whole path segments, and `example.com/hell` is not a "
            "segment prefix of `example.com/hello`.",
            answer=1,
            choices=["is accepted: `hell` is a prefix of `hello`",
                     "is refused: prefixes match whole path segments",
                     "is accepted only without a version label"],
            why_not={0: "As strings, yes — appc compares path segments.",
                     2: "Labels play no part in which keys count."}),
        Question(
            "soft", "Alice retired her key last week (reason: superseded). Her signature from "
            "last month …",
            "… still verifies: a soft revocation reaches back only to its own date; a "
            "\"compromised\" one withdraws every signature.",
            answer=0,
            choices=["still verifies", "is refused", "verifies only with GnuPG"],
            why_not={1: "That is what a *compromised* (hard) revocation does.",
                     2: "The kit and GnuPG agree on this."}),
        Question(
            "keyid", "Type the last 16 hex digits of Alice's key fingerprint (her key ID).",
            "A v4 key ID is the low 64 bits of the fingerprint; the signature's issuer "
            "subpacket names it.",
            answer=lambda: alice.public().fingerprint[-16:], hint="Print "
            "`alice.public().fingerprint`.", normalize=lambda v: str(v).replace(" ", "").upper()[-16:]),
    ]


def _discovery(store: Any = None, **_: Any) -> list[Question]:
    return [
        Question(
            "first", "What does a careful fetch download first?",
            "The signature: it is verified against the trust store before the image is imported "
            "(and a refusal means the image is never stored).",
            answer=1,
            choices=["the image", "the signature", "the public key"],
            why_not={0: "Downloading first is fine; importing before verifying is not — the kit "
                        "gets the signature first so it can refuse early.",
                     2: "Keys are trusted by the user out of band, not fetched blindly."}),
        Question(
            "latest", "An app string without a version: what does the kit put for `{version}`?",
            "`latest`, rkt's and the Go client's convention (the spec leaves it open).",
            answer=2, choices=["nothing: the template is skipped", "`1.0.0`", "`latest`"],
            why_not={0: "That is one reading of the spec; the kit follows rkt.",
                     1: "No version is assumed."}),
        Question(
            "beta", "You ask for `localhost/hello:1.0.0,channel=beta`; the served image has no "
            "`channel` label. Fetch …",
            "… refuses it: the image must carry the labels that were asked for.",
            answer=0, choices=["refuses it", "imports it", "imports it and adds the label"],
            why_not={1: "A server could then hand out any image under any name.",
                     2: "An image's manifest is signed; the kit never changes it."}),
        Question(
            "count", "How many versions of `localhost/hello` are in your store now?",
            "Read from your store just now (`store.list()`).",
            answer=lambda: str(sum(1 for i in store.list() if i.name == "localhost/hello")),
            hint="`[i for i in store.list() if i.name == 'localhost/hello']`",
            normalize=lambda v: str(v).strip()),
    ]


def _namespaces(myns: Any = None, **_: Any) -> list[Question]:
    def inode() -> str:
        from sandbox.net import netns
        return str(netns.ns_inode(myns))
    return [
        Question(
            "empty", "What does a brand-new network namespace hold?",
            "Only `lo`, and it is DOWN: not even 127.0.0.1 answers until something sets it up.",
            answer=1, choices=["a copy of the host's interfaces", "only `lo`, DOWN",
                                "`lo` UP and an `eth0`"],
            why_not={0: "A new namespace starts empty: that is the isolation.",
                     2: "`eth0` comes from CNI later; `lo` starts DOWN."}),
        Question(
            "setns", "`setns(2)` moves …",
            "… only the calling thread: namespaces belong to tasks, which is why the kit enters "
            "a namespace in a short-lived thread.",
            answer=0, choices=["only the calling thread", "the whole process",
                                "the process and its children"],
            why_not={1: "Other threads of the process stay where they were.",
                     2: "Children inherit the namespace they are started in, nothing moves them."}),
        Question(
            "bind", "After `mount --bind /proc/self/ns/net myns`, `stat myns` shows …",
            "… the namespace's own inode (nsfs): the file is now a mount point for it.",
            answer=2, choices=["the same inode as before", "inode 0",
                                "the network namespace's inode"],
            why_not={0: "It did change: you now see what is mounted on the file.",
                     1: "The namespace has a real inode number, `net:[N]`."}),
        Question(
            "inode", "Type the inode number of the namespace bound on `myns` (the N of `net:[N]`).",
            "Read from the kernel just now (`netns.ns_inode(myns)`).",
            answer=inode, hint="`netns.ns_inode(myns)`, or `stat -L -c %i` on the file.",
            normalize=lambda v: str(v).strip().strip("net:[]")),
    ]


def _cni(ip2: Any = None, state: Any = None, **_: Any) -> list[Question]:
    return [
        Question(
            "lease-file", "Which file holds the address host-local gave c2? (its name, or its "
            "path)",
            "host-local keeps one file per address, named by the address, in "
            "`<dataDir>/<network>/` (the content is the container ID and the interface).",
            answer=lambda: [str(ip2)] + ([str(state / str(ip2))] if state is not None else []),
            hint="Look at the directory the \"Plugins manage their own state\" cell lists.",
            normalize=_basename),
        Question(
            "bridge", "After DEL of every container, the `cni0` bridge …",
            "… is still there: no single DEL owns the bridge, so none removes it; deleting the "
            "node (or the admin) does.",
            answer=0, choices=["is still there", "is removed by the last DEL",
                                "is removed by the first DEL"],
            why_not={1: "No plugin call knows it is the last.",
                     2: "Other containers may still be attached."}),
        Question(
            "cache", "Where does the runtime keep what ADD answered, for CHECK and DEL?",
            "In its cache, `results/<network>-<containerID>-<ifname>` (libcni's layout), as "
            "`prevResult` for the plugins.",
            answer=1, choices=["in the plugin's memory", "in its result cache on disk",
                                "in the network configuration file"],
            why_not={0: "A plugin is a process that exits after each call.",
                     2: "The configuration is the user's; the runtime never writes it."}),
        Question(
            "gc", "A container's netns vanished without a DEL. What frees its address?",
            "GC (CNI 1.1.0): the runtime tells the plugins which attachments are still valid and "
            "they release the rest.",
            answer=2, choices=["nothing, it is leaked forever", "the next ADD", "GC"],
            why_not={0: "That was true before GC existed.",
                     1: "ADD picks a free address; it does not clean up others'."}),
    ]


def _beyond(**_: Any) -> list[Question]:
    return [
        Question(
            "cni-path", "The configuration says `\"type\": \"bridge\"`. Which executable runs?",
            "The first file named `bridge` in the directories of `CNI_PATH`, in order: the type is "
            "a file name, nothing more.",
            answer=1, choices=["the one built into the runtime",
                                "the first `bridge` found along `CNI_PATH`",
                                "the newest `bridge` on the machine"],
            why_not={0: "CNI runtimes have no built-in plugins: every plugin is an executable.",
                     2: "Order decides, not age."}),
        Question(
            "route", "Pods on node A cannot reach node B's pod subnet at first. What fixes it?",
            "A route on node A to B's pod subnet via node B (and back): the bridge plugin "
            "configures its own node only.",
            answer=0, choices=["a route on each node to the other's pod subnet",
                                "a second bridge plugin call", "NAT on both nodes"],
            why_not={1: "Another ADD wires another pod, not the path between nodes.",
                     2: "NAT would hide the pod's own address, which the lesson shows arriving."}),
        Question(
            "release", "Which IPAM gives an address back by deleting one file named after it?",
            "host-local: one file per address in `<dataDir>/<network>/`; the dhcp daemon releases "
            "its lease instead, and the SQL plugin deletes a row.",
            answer=2, choices=["dhcp", "the SQL table", "host-local"],
            why_not={0: "DHCP releases a lease with the server.",
                     1: "That deletes a row, not a file."}),
        Question(
            "multi", "A container on two networks has …",
            "… one interface, one ADD result and one cache entry per network: DEL of one leaves "
            "the other alone.",
            answer=0, choices=["one interface and one cache entry per network",
                                "one interface with two addresses", "two network namespaces"],
            why_not={1: "Each network's plugin makes its own interface.",
                     2: "The container keeps its one namespace."}),
    ]


def _replicas(**_: Any) -> list[Question]:
    return [
        Question(
            "render", "Three replicas of one image: how often is the image rendered?",
            "Once, into the tree store; each replica runs in its own clean copy of that tree.",
            answer=0, choices=["once", "three times", "never: they run from the archive"],
            why_not={1: "The tree store renders an image once and reuses it.",
                     2: "An app runs in a rendered filesystem, never in the tar."}),
        Question(
            "writes", "Replica 1 writes a file. Replica 2 …",
            "… does not see it: each replica's clean copy takes its own writes.",
            answer=1, choices=["sees it", "does not see it", "sees it after a restart"],
            why_not={0: "They share the rendered tree read-only, not their writes.",
                     2: "Nothing copies writes between copies."}),
        Question(
            "names", "How can replica 1 reach replica 2?",
            "By its IP address on the shared bridge; by name only once something publishes the "
            "names (here: a hosts file).",
            answer=2, choices=["by its image name", "through the host's loopback",
                                "by its IP address on the shared bridge"],
            why_not={0: "Three replicas share one image name: it cannot tell them apart.",
                     1: "Each replica has its own network namespace and its own loopback."}),
    ]


def _pods(p: Any = None, **_: Any) -> list[Question]:
    def ips() -> list[str]:
        from sandbox.pod import stage0
        return [ip.split("/")[0] for n in stage0.status(p.uuid)["networks"] for ip in n["ips"] if ip]
    return [
        Question(
            "shared", "Which namespaces do the apps of one pod share?",
            "pid, net, ipc and uts (pods.md); each app gets its own mount namespace with its own "
            "rendered filesystem.",
            answer=1, choices=["none", "pid, net, ipc and uts", "all of them, mount included"],
            why_not={0: "Then they could not talk over 127.0.0.1.",
                     2: "Each app is chrooted into its own tree."}),
        Question(
            "tmp", "reduce-worker writes `/tmp/mine`. worker-backup …",
            "… does not see it: each app has its own filesystem.",
            answer=0, choices=["does not see it", "sees it", "sees it after a sync"],
            why_not={1: "They share namespaces, not filesystems.",
                     2: "Nothing copies files between apps."}),
        Question(
            "pid1", "What is PID 1 inside the pod?",
            "The kit's stage1, which starts each app and reaps them — not an app.",
            answer=2, choices=["the first app", "the host's init", "the kit's stage1"],
            why_not={0: "Apps run under stage1.", 1: "The pod has its own PID namespace."}),
        Question(
            "ip", "Which IPv4 address did the pod's `eth0` get?",
            "Read from the pod's status just now (the CNI ADD result it recorded).",
            answer=ips, hint="The \"Interfaces\" cell shows it, and `sandbox status` too.",
            normalize=lambda v: str(v).strip().split("/")[0]),
    ]


def _oci(exported: Any = None, **_: Any) -> list[Question]:
    def blobs() -> str:
        from pathlib import Path
        return str(sum(1 for _ in (Path(exported.layout) / "blobs" / "sha256").iterdir()))
    return [
        Question(
            "ids", "appc names an image by one SHA-512; OCI by …",
            "… the sha256 of a manifest that points, by digest, to a config and to each layer: a "
            "Merkle DAG.",
            answer=1, choices=["the sha256 of the whole tar", "a manifest's sha256 that points to "
                                "config and layer digests", "a name and a tag only"],
            why_not={0: "That would be appc's rule with another hash.",
                     2: "Tags are mutable names; the digest identifies."}),
        Question(
            "blobs", "How many blobs are in your OCI layout's `blobs/sha256`?",
            "Counted in your layout just now: the manifest, the config, and one per layer.",
            answer=blobs, hint="`ls layout/blobs/sha256`", normalize=lambda v: str(v).strip()),
        Question(
            "runc", "Who ran the OCI runtime bundle?",
            "`runc`, the OCI runtime, from the bundle's `config.json` and `rootfs/`.",
            answer=0, choices=["runc", "the kit's stage1", "skopeo"],
            why_not={1: "stage1 runs appc pods.", 2: "skopeo copies and inspects images."}),
    ]


def _cnm(**_: Any) -> list[Question]:
    return [
        Question(
            "configures", "In CNM, who puts the address on the container's interface?",
            "libnetwork (the controller): the remote driver only creates the host-side link and "
            "answers with names, addresses and routes.",
            answer=1, choices=["the remote driver", "libnetwork's controller", "the container"],
            why_not={0: "It never enters the sandbox: it is only told its path.",
                     2: "The container is not asked."}),
        Question(
            "process", "A CNI plugin is an executable run once per call. A CNM remote driver is …",
            "… a long-running service answering JSON over HTTP on a socket.",
            answer=0, choices=["a long-running HTTP service", "a shared library",
                                "the same executable"],
            why_not={1: "Both models keep drivers out of the runtime's process.",
                     2: "It stays up between calls."}),
        Question(
            "objects", "CNM's endpoint, in what you built with CNI, is …",
            "… the veth pair: one end in the node's bridge, the other the container's eth0.",
            answer=2, choices=["the bridge", "the network namespace", "the veth pair"],
            why_not={0: "The bridge is the network.", 1: "The namespace is the sandbox."}),
        Question(
            "down", "Taking a container off a network: CNI runs DEL. CNM calls …",
            "… Leave, then DeleteEndpoint (and the IPAM driver releases the address).",
            answer=1, choices=["DeleteNetwork", "Leave, then DeleteEndpoint", "nothing"],
            why_not={0: "That removes the whole network.",
                     2: "The driver must remove its host-side link."}),
    ]


#: notebook file name (without .ipynb) -> its questions
QUIZZES: dict[str, Callable[..., list[Question]]] = {
    "00-welcome": _welcome,
    "01-image-format": _image_format,
    "02-rendering": _rendering,
    "03-signing-and-trust": _signing,
    "04-discovery": _discovery,
    "05-namespaces": _namespaces,
    "06-cni": _cni,
    "06b-cni-beyond-one-bridge": _beyond,
    "07-pods": _pods,
    "07b-replicas": _replicas,
    "08-oci": _oci,
    "09-cni-vs-cnm": _cnm,
}

#: the notebook variables each self-check reads its live answers from (the quiz cell passes them)
LIVE: dict[str, tuple[str, ...]] = {
    "01-image-format": ("hello_aci",),
    "02-rendering": ("trace",),
    "03-signing-and-trust": ("alice",),
    "04-discovery": ("store",),
    "05-namespaces": ("myns",),
    "06-cni": ("ip2", "state"),
    "07-pods": ("p",),
    "08-oci": ("exported",),
}


def _name(notebook: str) -> str:
    if notebook in QUIZZES:
        return notebook
    for name in QUIZZES:
        if name.split("-", 1)[0] == notebook:
            return name
    raise QuizError(f"There is no self-check for notebook {notebook!r}; there are: "
                    f"{', '.join(QUIZZES)}.")


def quiz(notebook: str, **live: Any) -> Quiz:
    """The self-check of ``notebook`` (its file name, or its number ``"06"``)."""
    name = _name(notebook)
    return Quiz(name, QUIZZES[name](**live))


def counts() -> dict[str, int]:
    """How many questions each notebook's self-check has."""
    return {name: len(fn()) for name, fn in QUIZZES.items()}
