"""Lab 3: predict a render with dependencies and a pathWhitelist (ace.md §Filesystem Setup).

The lab's notebook (``CELLS``), its checks, the helpers its cells call and the mistake the tests
make live here together (see :mod:`sandbox.course.labs`).
"""
from __future__ import annotations

from typing import Any, Iterable

from sandbox.course.labs import Result, Workspace, gate
from sandbox.errors import SandboxError
from sandbox.course.labs.authoring import code, footer, header, md, todo

# The lab's declaration, read by sandbox.course.labs: the same names in every lab module (and
# CELLS opens with header(...) and a set-up cell in each), the values are this lab's: data.
NUMBER = 3
SLUG = "render-predict"
TITLE = "Render an app with dependencies and a pathWhitelist — predict first"
FOLLOWS = "02"
OBJECTIVES = (
    'predict the rendered files of an app with two dependencies and a pathWhitelist',
    'render it and compare your prediction with the render trace',
)
INTRO = """
The spec's Filesystem Setup, as appc 0.7 and later (and rkt, and this kit) have it: extract the
image's dependencies' `rootfs` in order, then the image's own, and when the image has a
`pathWhitelist`, remove *every* path not listed. (The seed slide quotes an earlier `ace.md`,
v0.6, whose list extracts the image's **own** `rootfs` first and its dependencies after it —
notebook 02 shows which revision says what; question 3 below asks what that order would do.)
Three small images are made for you below. Before rendering, **write down what you expect** —
then let the kit render it and compare with its trace."""

# One entry per check, in the order checks() yields them (a branch may word its check
# more precisely); the report lists those a failed gate kept from running as "not checked yet".
CHECKS = [
    'your prediction is recorded',
    'example.com/lab3-app is rendered',
    'your prediction equals the rendered files',
    'you named the image whose /etc/app.conf wins',
    "you said whose /bin/tool the seed's (v0.6) order would leave",
]
# What the untouched student notebook's check says first (tests/course/test_labs.py).
STUDENT_HINT = 'write the set of files you expect'

CELLS = [
    *header(NUMBER, TITLE, INTRO, OBJECTIVES, FOLLOWS),
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
prediction = set()  # the paths of the files you expect
ws.answer("prediction", prediction)
# ws.answer("app_conf_from", "example.com/…")
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
    md("## 3. The seed's order\n\nThe seed quotes `ace.md` v0.6: *the `rootfs` contained in the ACI "
       "is extracted*, then *the `rootfs` of each dependent image … in the order in which they are "
       "listed*. Read literally, with a later copy still overriding an earlier one: whose "
       "`/bin/tool` would `example.com/lab3-app` end up with? (appc/spec issue #425 asked this, "
       "and v0.7 reversed the order.) Record `ws.answer(\"bin_tool_v06\", \"example.com/…\")`."),
    todo('''
ws.answer("bin_tool_v06", "example.com/lab3-base")
''', '''
# ws.answer("bin_tool_v06", "example.com/…")
'''),
    *footer(NUMBER),
]


LAB3_APP = "example.com/lab3-app"


LAB3_IMAGES = {
    "example.com/lab3-base": ({"/bin/tool": "base tool\n", "/etc/motd": "base motd\n",
                               "/etc/app.conf": "from base\n", "/lib/libc.so": "base libc\n"},
                              [], None),
    "example.com/lab3-config": ({"/etc/app.conf": "from config\n", "/etc/extra.conf": "extra\n"},
                                [], None),
    LAB3_APP: ({"/app/run": "#!/bin/sh\necho run\n", "/app/README": "docs\n",
                "/bin/tool": "app's own tool\n"},
               ["example.com/lab3-base", "example.com/lab3-config"],
               ["/app/run", "/bin/tool", "/etc/app.conf", "/lib/libc.so"]),
}


def lab3_images(ws: Workspace):
    """Build and import the lab's three images; return the store. The app depends on base and
    config (in that order) and has a pathWhitelist."""
    from sandbox.image import catalog
    from sandbox.image.store import Store
    store = Store()
    for name, (files, deps, whitelist) in LAB3_IMAGES.items():
        catalog.small_image(ws.path / f"{name.split('/')[-1]}.aci", name,
                            {p.lstrip("/"): t for p, t in files.items()}, dependencies=deps,
                            path_whitelist=whitelist, epoch=None, import_to=store)
    return store


def lab3_manifests(ws: Workspace) -> str:
    """The three manifests and file lists, as text for the learner to reason about."""
    parts = []
    for name, (files, deps, whitelist) in LAB3_IMAGES.items():
        parts.append(f"{name}\n  files: {', '.join(sorted(files))}\n"
                     f"  dependencies: {', '.join(deps) or '-'}\n"
                     f"  pathWhitelist: {', '.join(whitelist) if whitelist else '-'}")
    return "\n".join(parts)


def rendered_files(tree: Any) -> set[str]:
    """The non-directory paths of a rendered tree, from its trace."""
    return {p for p, h in tree.trace().final_paths().items() if h.type != "dir"}


def _lab3_tree(store: Any):
    from sandbox.render import treestore
    try:
        img = store.get(LAB3_APP)
    except SandboxError:
        return None, None
    trees = treestore.trees_of(img.id)
    return img, (trees[0] if trees else None)


def checks(ws: Workspace) -> Iterable[Result]:
    from sandbox.image.store import Store
    answers = ws.answers()
    pred = answers.get("prediction")
    yield gate("your prediction is recorded", bool(pred),
                "write the set of files you expect in the rendered app (e.g. {'/app/run', …}) "
                "and record it with ws.answer('prediction', prediction) — before rendering")
    if not pred:
        return
    img, tree = _lab3_tree(Store())
    if img is None:
        yield gate("the lab's images are in the store", False,
                    "run the setup cell: store = lab3.lab3_images(ws)")
        return
    yield gate("example.com/lab3-app is rendered", tree is not None,
                "not rendered yet: tree = treestore.render_image(store, 'example.com/lab3-app')")
    if tree is None:
        return
    problems = tree.verify()
    if problems:
        yield Result("the rendered tree is intact", False,
                     "the rendered tree was changed after rendering (" + problems[0] + "); run "
                     "`sandbox lab reset 3` and render again", "failcheck")
        return
    try:
        when = (tree.path / "rendered").stat().st_mtime
    except OSError:
        when = None
    t = ws._read("answers.json").get("prediction", {}).get("time")
    if isinstance(when, (int, float)) and t and t > when:
        yield Result("predicted before rendering", True,
                     "you changed your prediction after rendering; next time, commit to it first",
                     "advice")
    real = rendered_files(tree)
    trace = tree.trace()
    mine = {("/" + p.lstrip("/")).rstrip("/") for p in pred}
    extra, missing = sorted(mine - real), sorted(real - mine)
    reasons = []
    for p in extra[:3]:
        why = trace.describe(p) if p in trace.paths else "no image has this path"
        reasons.append(f"{p} is not in the tree ({why})")
    for p in missing[:3]:
        reasons.append(f"{p} is in the tree ({trace.describe(p)})")
    yield Result("your prediction equals the rendered files", not extra and not missing,
                 "; ".join(reasons))
    who_v06 = answers.get("bin_tool_v06")
    real_v06 = v06_owner("/bin/tool")
    v06_hint = ""
    if who_v06 != real_v06:
        v06_hint = ("record it with ws.answer('bin_tool_v06', 'example.com/…')" if who_v06 is None else
                    f"you said {who_v06}; v0.6 extracts {' then '.join(v06_order())}, and the last "
                    f"one with /bin/tool is {real_v06} — its copy overwrites the app's own")
    who = answers.get("app_conf_from")
    real_who = trace.owner("/etc/app.conf")
    yield Result("you named the image whose /etc/app.conf wins", who == real_who,
                 "record it with ws.answer('app_conf_from', 'example.com/…')" if who is None else
                 f"you said {who}; {trace.describe('/etc/app.conf')}")
    yield Result(CHECKS[4], who_v06 == real_v06, v06_hint)


def v06_order() -> list[str]:
    """The seed's (ace.md v0.6) extraction order read literally: the image's own rootfs, then
    its dependencies in listed order."""
    _, deps, _ = LAB3_IMAGES[LAB3_APP]
    return [LAB3_APP, *deps]


def v06_owner(path: str) -> str | None:
    """Whose copy of ``path`` that order leaves (the last image that has it)."""
    return next((n for n in reversed(v06_order()) if path in LAB3_IMAGES[n][0]), None)


def reset(ws: Workspace) -> list[str]:
    from sandbox.image.store import Store
    from sandbox.render import treestore
    done = []
    store = Store()
    for name in LAB3_IMAGES:
        try:
            img = store.get(name)
        except SandboxError:
            continue
        for tree in treestore.trees_of(img.id):
            try:
                treestore.remove(tree)
                done.append(f"removed rendered tree of {name}")
            except SandboxError as e:
                done.append(f"kept a tree of {name}: {e}")
        store.remove(img.id)
        done.append(f"removed image {name}")
    return done


def mistake(ws: Workspace) -> str:
    """A mistake learners make on the finished lab: predicting a file the whitelist drops.
    Returns what the check then says."""
    ws.answer("prediction", ["/app/run", "/bin/tool", "/etc/app.conf", "/lib/libc.so", "/etc/motd"])
    return "example.com/lab3-base filtered out by the whitelist of example.com/lab3-app"
