"""Write every lab's student notebook (labs/NN-slug/lab.ipynb) and its reference solution
(labs/NN-slug/solution/lab.ipynb) from this one source, so the two never drift apart.

    .venv/bin/python labs/make_labs.py

Cell tags: ``todo`` (student: the exercise, left undone), ``solution`` (the same cell, done),
``check`` (calls sandbox.course.labs.check), ``cleanup`` (calls sandbox.course.labs.reset). Notebooks are
written without outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent


def md(text: str):
    return ("md", text.strip("\n"), None)


def code(src: str):
    return ("code", src.strip("\n"), None)


def todo(solution: str, student: str):
    return ("todo", solution.strip("\n"), student.strip("\n"))


def check(n: int):
    return ("check", f"labs.check({n})", None)


def cleanup(n: int):
    return ("cleanup", f"labs.reset({n})", None)


def footer(n: int) -> list:
    return [md("## Check your work\n\nThe check reads the live state (files, kernel, pod). From a "
               f"terminal the same checks run with `sandbox lab check {n}`."),
            check(n),
            md("## Clean up\n\nEverything this lab made goes away (also what a half-done run left): "
               f"`sandbox lab reset {n}` does the same from a terminal."),
            cleanup(n)]


def header(n: int, title: str, body: str) -> list:
    return [md(f"# Lab {n} · {title}\n\n{body.strip()}\n\n"
               "Cells marked **TODO** are yours. Run the notebook top to bottom; the check cell "
               "near the end tells you what is still missing, with a hint. Stuck in a state you "
               f"cannot undo? `sandbox lab reset {n}` in a terminal, then start again.")]


LABS: dict[str, list] = {}

LABS["01-first-aci"] = [
    *header(1, "Your first ACI, and its image ID by hand", """
Slides 11–14: *your container image* is a filesystem plus what to run, and it has a name
(`example.com/app`) and an ID (`d474e8c57737625c`). In appc (spec `aci.md`) the image is a tar
holding a `manifest` and a `rootfs/`, and its **image ID** is `sha512-` followed by the SHA-512 of
the *uncompressed* tar. You will build one and compute that ID yourself."""),
    code('''
import gzip
import hashlib
import json

from sandbox.image import aci

from sandbox.course import labs
ws = labs.workspace(1)          # $SANDBOX_DIR/labs/01: everything this lab makes lives here
layout = ws.path / "hello"
ws
'''),
    md("## 1. The layout: `rootfs/` …\n\nThe files the app will see. This part is done for you."),
    code('''
(layout / "rootfs").mkdir(parents=True, exist_ok=True)
(layout / "rootfs" / "hello.txt").write_text("Hello, world!\\n")
sorted(p.relative_to(layout).as_posix() for p in layout.rglob("*"))
'''),
    md("## 2. … and the `manifest`\n\n**TODO**: an ImageManifest needs `acKind`, `acVersion` and "
       "a `name`; give it the name `example.com/hello` and a `version` label `1.0.0`."),
    todo('''
manifest = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    "name": "example.com/hello",
    "labels": [{"name": "version", "value": "1.0.0"}],
}
''', '''
manifest = {
    "acKind": "ImageManifest",
    "acVersion": "0.8.11",
    # TODO: add "name": "example.com/hello" and "labels": [{"name": "version", "value": "1.0.0"}]
}
'''),
    code('''
(layout / "manifest").write_text(json.dumps(manifest, indent=2))
aci.validate_layout(layout)      # [] means valid
'''),
    md("## 3. Build the ACI\n\n**TODO**: build `hello.aci` in the workspace with "
       "`aci.build(layout, out)` (it writes a gzip-compressed tar and returns the image ID)."),
    todo('''
built_id = aci.build(layout, ws.path / "hello.aci", overwrite=True)
''', '''
built_id = None  # TODO: aci.build(layout, ws.path / "hello.aci", overwrite=True)
'''),
    md("## 4. The image ID, by hand\n\n**TODO**: open `hello.aci` with `gzip.open` (the ID is over "
       "the *uncompressed* tar), feed every byte to `hashlib.sha512`, and record "
       "`\"sha512-\" + hexdigest` with `ws.answer(\"image_id\", …)`."),
    todo('''
with gzip.open(ws.path / "hello.aci", "rb") as f:
    my_id = "sha512-" + hashlib.sha512(f.read()).hexdigest()
ws.answer("image_id", my_id)
''', '''
my_id = None  # TODO: "sha512-" + the hex SHA-512 of the uncompressed tar
ws.answer("image_id", my_id)
'''),
    *footer(1)[:2],
    md("The kit agrees (and so does `sha512sum` of `zcat hello.aci`): the short form appc prints "
       "is the first 32 hex digits."),
    code('''
aci.image_id(ws.path / "hello.aci"), aci.short_id(aci.image_id(ws.path / "hello.aci"))
'''),
    *footer(1)[2:],
]

LABS["02-sign-and-trust"] = [
    *header(2, "Sign an image, trust a prefix, refuse a tampered copy", """
Slide 15: *Signed By: Alice*. appc signs the `.aci` file with a detached, armored OpenPGP
signature (`hello.aci.asc`), and the runtime accepts it only when the signer's key is trusted for
the image's name — for the whole name space (root) or for a *prefix* like `example.com`."""),
    code('''
import shutil

from sandbox.course import labs
from sandbox.course.labs import lab1, lab2

from sandbox.trust import pgp, truststore as trust
ws = labs.workspace(2)
aci_path = lab2.lab2_image(ws)        # example.com/hello, uncompressed so one byte is easy to change
trusted = lab2.trust_store(ws)        # the lab's own trust store (rkt's root.d / prefix.d layout)
aci_path
'''),
    md("## 1. Alice's key\n\n**TODO**: make Alice a key (`pgp.generate_key(\"Alice <alice@example.com>\", "
       "type=\"ed25519\")`) and save her public key to `ws.path / \"alice.pub.asc\"`."),
    todo('''
alice = pgp.generate_key("Alice <alice@example.com>", type="ed25519")
(ws.path / "alice.pub.asc").write_bytes(alice.public().armored())
alice.public().fingerprint
''', '''
alice = None  # TODO: pgp.generate_key(...), then save alice.public().armored()
'''),
    md("## 2. Sign\n\n**TODO**: `pgp.sign(aci_path, alice)` returns the armored signature; write "
       "it where appc looks for it: `trust.signature_path_for(aci_path)`."),
    todo('''
signature = pgp.sign(aci_path, alice)
trust.signature_path_for(aci_path).write_bytes(signature)
print(signature.decode())
''', '''
# TODO: sign aci_path with alice and write the signature to trust.signature_path_for(aci_path)
'''),
    md("Bob (the runtime) does not know Alice yet:"),
    code('lab2.verdict(trusted, aci_path)'),
    md("## 3. Trust Alice — for `example.com` only\n\n**TODO**: `trusted.add(prefix, key)` with the "
       "prefix `example.com` (not as a root key: she should not be able to sign `other.org/…`)."),
    todo('''
trusted.add("example.com", alice.public().armored())
trusted.list()
''', '''
# TODO: trusted.add("example.com", <Alice's armored public key>)
'''),
    code('lab2.verdict(trusted, aci_path)'),
    md("## 4. Mallory changes one byte\n\n**TODO**: make `ws.path / \"tampered.aci\"`: a copy of "
       "hello.aci with one byte of `Hello, world!` changed (`lab1.flip_byte(src, dst, b\"Hello, world!\")`), "
       "and put Alice's signature next to it as `tampered.aci.asc`."),
    todo('''
tampered = ws.path / "tampered.aci"
lab1.flip_byte(aci_path, tampered, b"Hello, world!")
shutil.copy(trust.signature_path_for(aci_path), trust.signature_path_for(tampered))
''', '''
tampered = ws.path / "tampered.aci"
# TODO: copy aci_path to tampered with one byte changed, and copy the signature next to it
'''),
    md("**TODO**: verify the tampered copy with `trusted.verify_image(tampered)`; catch the "
       "`pgp.SignatureError` and record its class name with `ws.answer(\"refused_because\", …)`."),
    todo('''
try:
    trusted.verify_image(tampered)
except pgp.SignatureError as e:
    print(f"{type(e).__name__}: {e}")
    ws.answer("refused_because", type(e).__name__)
''', '''
# TODO: try trusted.verify_image(tampered); record type(e).__name__ of the refusal
'''),
    *footer(2),
]

LABS["03-render-predict"] = [
    *header(3, "Render an app with dependencies and a pathWhitelist — predict first", """
The spec's Filesystem Setup: extract the image's dependencies' `rootfs` in order, then the image's
own, and when the image has a `pathWhitelist`, remove *every* path not listed. Three small images
are made for you below. Before rendering, **write down what you expect** — then let the kit render
it and compare with its trace."""),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab3

from sandbox.render import treestore
ws = labs.workspace(3)
store = lab3.lab3_images(ws)
print(lab3.lab3_manifests(ws))
'''),
    md("## 1. Predict\n\nRules: dependencies are extracted first, in the order listed, the image "
       "itself last; a later copy of a path overrides an earlier one; then the whitelist of "
       "`example.com/lab3-app` drops every file it does not list.\n\n**TODO**: the set of *files* "
       "(not directories) in the rendered app, and which image's `/etc/app.conf` ends up there."),
    todo('''
prediction = {"/app/run", "/bin/tool", "/etc/app.conf", "/lib/libc.so"}
ws.answer("prediction", prediction)
ws.answer("app_conf_from", "example.com/lab3-config")
''', '''
prediction = set()  # TODO: the files you expect, e.g. {"/app/run", ...}
ws.answer("prediction", prediction)
# TODO: ws.answer("app_conf_from", "<the image whose /etc/app.conf wins>")
'''),
    md("## 2. Render\n\n**TODO**: `treestore.render_image(store, \"example.com/lab3-app\")` renders "
       "it (once; later calls reuse the tree) and returns the tree with its trace."),
    todo('''
tree = treestore.render_image(store, "example.com/lab3-app")
''', '''
tree = None  # TODO: treestore.render_image(store, "example.com/lab3-app")
'''),
    code('''
print(tree.trace().text() if tree is not None else "not rendered yet")
'''),
    *footer(3),
]

LABS["04-veth"] = [
    *header(4, "A network namespace the slide's way, and two wired with a veth pair", """
Slide 48, CNI step 1: the runtime creates a network namespace and gives it a *named handle*:

    touch myns
    unshare -n mount --bind /proc/self/ns/net myns

You will make one exactly so, another with the kit, join them with a veth pair, give each end an
address and ping across — only between the two namespaces this lab made. The names are unique
(`sbx-l4-…`) so nothing else on the machine is touched."""),
    code('''
import subprocess
from pathlib import Path

from sandbox.course import labs
from sandbox.course.labs import lab4

from sandbox.net import netns
ws = labs.workspace(4)
n = lab4.lab4_names(ws)
A, B, VA, VB, ADDR_A, ADDR_B = (n[k] for k in ("A", "B", "VA", "VB", "ADDR_A", "ADDR_B"))
lab4.netns_dir()                 # /run/netns, where `ip netns` looks
n
'''),
    md("## 1. Namespace A, the slide's way\n\n**TODO**: `touch` the handle `/run/netns/<A>`, then "
       "run `unshare -n mount --bind /proc/self/ns/net <handle>` (with `subprocess.run`)."),
    todo('''
handle = Path("/run/netns") / A
handle.touch()
subprocess.run(["unshare", "-n", "mount", "--bind", "/proc/self/ns/net", str(handle)], check=True)
''', '''
handle = Path("/run/netns") / A
# TODO: touch the handle, then: unshare -n mount --bind /proc/self/ns/net <handle>
'''),
    md("## 2. Namespace B, with the kit\n\n**TODO**: `netns.create(B)` does the same (a helper "
       "thread unshares and bind-mounts its own namespace)."),
    todo('netns.create(B)', '# TODO: netns.create(B)'),
    code('print(lab4.show_netns(A, B))'),
    md("## 3. A veth pair between them\n\n**TODO**: create the pair *inside* A with its peer born "
       "in B — `ip -n A link add VA type veth peer name VB netns B` — and give each end its "
       "address (`ip -n A addr add ADDR_A dev VA`, same for B). Always `-n`: never the host."),
    todo('''
subprocess.run(["ip", "-n", A, "link", "add", VA, "type", "veth", "peer", "name", VB, "netns", B], check=True)
subprocess.run(["ip", "-n", A, "addr", "add", ADDR_A, "dev", VA], check=True)
subprocess.run(["ip", "-n", B, "addr", "add", ADDR_B, "dev", VB], check=True)
''', '''
# TODO: the veth pair (VA in A, VB in B) and the two addresses
'''),
    code('print(lab4.show_netns(A, B))'),
    md("## 4. Up, and ping\n\n**TODO**: a new link is DOWN: set both ends up. Then ping B's "
       "address from A with `netns.ping(A, address)` and record `ws.answer(\"ping_rc\", r.returncode)`."),
    todo('''
subprocess.run(["ip", "-n", A, "link", "set", VA, "up"], check=True)
subprocess.run(["ip", "-n", B, "link", "set", VB, "up"], check=True)
''', '''
# TODO: set VA up inside A and VB up inside B
'''),
    code('from sandbox.viz.net import netns_picture\n\nnetns_picture(A, B)'),
    todo('''
r = netns.ping(A, ADDR_B.split("/")[0])
print(r.stdout)
ws.answer("ping_rc", r.returncode)
''', '''
# TODO: r = netns.ping(A, <B's address without /24>); ws.answer("ping_rc", r.returncode)
'''),
    *footer(4),
]

PLUGIN_HEAD = r'''
PLUGIN = r"""
import ipaddress, json, os, sqlite3, sys

SUPPORTED = ["1.0.0"]


def reply(obj, code=0):
    print(json.dumps(obj))
    sys.exit(code)


def error(code, msg, version):
    reply({"cniVersion": version, "code": code, "msg": msg}, 1)


cmd = os.environ.get("CNI_COMMAND", "")
conf = json.load(sys.stdin)
version = conf.get("cniVersion", "1.0.0")
if cmd == "VERSION":
    reply({"cniVersion": version, "supportedVersions": SUPPORTED})

ipam = conf["ipam"]
subnet = ipaddress.ip_network(ipam["subnet"])
gateway = subnet[1]                      # the bridge's address: never give it to a container
db = sqlite3.connect(ipam["dbPath"], timeout=30, isolation_level=None)
db.execute("CREATE TABLE IF NOT EXISTS leases (network TEXT, ip TEXT, container TEXT, ifname TEXT,"
           " PRIMARY KEY (network, ip))")
who = (conf["name"], os.environ["CNI_CONTAINERID"], os.environ["CNI_IFNAME"])
'''

LABS["05-sqlite-ipam"] = [
    *header(5, "Your own CNI IPAM plugin, backed by SQLite", """
Slide 44 lists ways to allocate IP addresses — one is an *IPAM system backed by SQL database*.
In CNI that is just another plugin: the main plugin (`bridge`) execs the program named by
`ipam.type` with the same environment and stdin, and it answers with addresses. You will write
`sqlite-ipam`, then run it under the kit's runtime (`sandbox.net.cni.Runtime`) with the kit's bridge,
and under Debian's upstream bridge (`/usr/lib/cni/bridge`) delegating to it. Everything runs in a
*node* network namespace that plays the host — never on the real host."""),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab5

from sandbox.net import netns
ws = labs.workspace(5)
n = lab5.lab5_setup(ws)          # node netns, two container netns, two network configs
print((ws.path / "net.d-ours" / "10-lab5.conf").read_text())
n
'''),
    md("## 1. The plugin\n\nThe protocol (CNI SPEC §2): `CNI_COMMAND` (ADD, DEL, VERSION…), "
       "`CNI_CONTAINERID`, `CNI_IFNAME` in the environment, the network config as JSON on stdin, "
       "one JSON answer on stdout, exit 0 (or an error object and exit 1).\n\n**TODO**: write ADD "
       "(first free host address of the subnet, not the gateway; INSERT it; reply with "
       "`{\"cniVersion\": version, \"ips\": [{\"address\": \"<ip>/<prefix>\", \"gateway\": …}]}`) "
       "and DEL (delete the row; succeed when there is none)."),
    todo(PLUGIN_HEAD + r'''
if cmd == "ADD":
    db.execute("BEGIN IMMEDIATE")            # one writer at a time: no address is given twice
    row = db.execute("SELECT ip FROM leases WHERE network=? AND container=? AND ifname=?", who).fetchone()
    if row:
        ip = row[0]
    else:
        used = {r[0] for r in db.execute("SELECT ip FROM leases WHERE network=?", who[:1])}
        ip = next((str(h) for h in subnet.hosts() if h != gateway and str(h) not in used), None)
        if ip is None:
            db.execute("ROLLBACK")
            error(110, f"no free address left in {subnet}", version)
        db.execute("INSERT INTO leases VALUES (?, ?, ?, ?)", (who[0], ip, who[1], who[2]))
    db.execute("COMMIT")
    reply({"cniVersion": version,
           "ips": [{"address": f"{ip}/{subnet.prefixlen}", "gateway": str(gateway)}]})
elif cmd == "DEL":
    db.execute("DELETE FROM leases WHERE network=? AND container=? AND ifname=?", who)
elif cmd in ("CHECK", "GC", "STATUS"):
    pass
else:
    error(4, f"unknown CNI_COMMAND {cmd!r}", version)
"""
''', PLUGIN_HEAD + r'''
if cmd == "ADD":
    # TODO: pick the first free host address (skip the gateway), INSERT it, reply with the result
    error(100, "ADD is not written yet (TODO)", version)
elif cmd == "DEL":
    pass  # TODO: delete this container's lease
elif cmd in ("CHECK", "GC", "STATUS"):
    pass
else:
    error(4, f"unknown CNI_COMMAND {cmd!r}", version)
"""
'''),
    code('lab5.install_plugin(ws, PLUGIN)      # <workspace>/bin/sqlite-ipam, executable'),
    md("## 2. Under the kit's runtime and bridge\n\nThe runtime runs `bridge` (the kit's, found "
       "in `sandbox net plugin-dir`) inside the node netns; bridge delegates IPAM to yours."),
    code('''
rt_ours = lab5.lab5_runtime(ws, "ours")
lab5.attach(rt_ours, n["ours"], n["c1"])
'''),
    md("## 3. Under upstream's bridge\n\nSame configuration shape, but `CNI_PATH` finds Debian's "
       "Go `bridge` in `/usr/lib/cni`; it execs your Python plugin just the same."),
    code('''
rt_up = lab5.lab5_runtime(ws, "upstream")
lab5.attach(rt_up, n["upstream"], n["c2"])
'''),
    code('lab5.leases(ws)'),
    code('from sandbox.viz.net import netns_picture\n\nnetns_picture(n["c1"], n["c2"], node=n["node"])'),
    *footer(5),
]

LABS["06-pod-app-perspective"] = [
    *header(6, "The seed's three-app pod, from the app's perspective", """
The spec excerpt: *the "app" perspective is how the app processes inside the pod see the
environment*. The example pod runs `example.com/reduce-worker`, `example.com/worker-backup` and
`example.com/reduce-worker-register` (built offline from Debian's busybox). Run it and look around
from inside: hostname, PID 1, network interfaces, filesystem."""),
    code('''
from sandbox.course import labs
from sandbox.course.labs import lab6

from sandbox.pod import stage0 as pod
ws = labs.workspace(6)
store = lab6.catalogue_store()
lab6.LAB6_APPS
'''),
    md("## 1. Run the pod\n\n**TODO**: `pod.run(store, lab6.LAB6_APPS, detach=True)` returns once "
       "the apps started; record its UUID with `ws.answer(\"pod\", p.uuid)`."),
    todo('''
p = pod.run(store, lab6.LAB6_APPS, detach=True)
ws.answer("pod", p.uuid)
''', '''
p = None  # TODO: run the pod detached and record p.uuid
'''),
    code('print(lab6.pod_summary(ws))'),
    md("## 2. Look around from inside\n\n`lab6.app_view(uuid, app, shell_command)` runs a command "
       "inside an app (like `sandbox enter`). **TODO**: record what the apps see: the hostname "
       "(`hostname`), PID 1's command line (`tr '\\0' ' ' < /proc/1/cmdline`), the interfaces "
       "(`ls /sys/class/net`, as a list), and the names in worker-backup's `/` (`ls /`, as a list)."),
    todo('''
ws.answer("hostname", lab6.app_view(p.uuid, "reduce-worker", "hostname"))
ws.answer("pid1", lab6.app_view(p.uuid, "reduce-worker", "tr '\\\\0' ' ' < /proc/1/cmdline"))
ws.answer("interfaces", lab6.app_view(p.uuid, "reduce-worker", "ls /sys/class/net").split())
ws.answer("backup_root", lab6.app_view(p.uuid, "worker-backup", "ls /").split())
ws.answers()
''', '''
# TODO: ws.answer("hostname", ...), ws.answer("pid1", ...), ws.answer("interfaces", [...]),
#       ws.answer("backup_root", [...])
'''),
    md("What did you find? All apps share one hostname, one PID namespace (PID 1 is the kit's "
       "stage1, not your app) and one network namespace (`lo` + `eth0`), but each has its *own* "
       "filesystem: worker-backup's whitelist left it only the few paths it needs."),
    *footer(6),
]


def build(cells: list, solution: bool):
    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src, student in cells:
        if kind == "md":
            nb.cells.append(new_markdown_cell(src))
        elif kind == "code":
            nb.cells.append(new_code_cell(src))
        elif kind == "todo":
            c = new_code_cell(src if solution else student)
            c.metadata["tags"] = ["solution"] if solution else ["todo"]
            nb.cells.append(c)
        else:
            c = new_code_cell(src)
            c.metadata["tags"] = [kind]
            nb.cells.append(c)
    for i, c in enumerate(nb.cells):
        c["id"] = f"cell-{i:02d}"
    return nb


def main() -> None:
    for slug, cells in LABS.items():
        d = HERE / slug
        (d / "solution").mkdir(parents=True, exist_ok=True)
        nbformat.write(build(cells, False), d / "lab.ipynb")
        nbformat.write(build(cells, True), d / "solution" / "lab.ipynb")
        print("wrote", d)


if __name__ == "__main__":
    main()
