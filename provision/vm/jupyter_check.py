"""What a learner's browser does first, through Vagrant's forwarded port (`make vm-e2e`, on the host):

1. JupyterLab answers: 200 with the token, 403 without; the Lab page and the notebooks are served;
2. a kernel starts in the guest, runs a cell over the kernel websocket (the kit imports, as root,
   on the guest's architecture) and is shut down again.

    python jupyter_check.py PORT TOKEN MACHINE      (MACHINE: the guest's `uname -m`)

Needs tornado (the project's .venv has it, with JupyterLab). Exits non-zero with one sentence.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
import uuid

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

CELL = "import os, sandbox; print('lab-kernel', os.uname().machine, os.geteuid(), sandbox.__name__)"


def call(base: str, path: str, token: str | None, method: str = "GET") -> tuple[int, bytes]:
    headers = {"Authorization": f"token {token}"} if token else {}
    req = urllib.request.Request(base + path, headers=headers, method=method,
                                 data=b"{}" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, b""


def wait_for_lab(base: str, token: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            code, _ = call(base, "/api/status", token)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"JupyterLab did not answer on {base} within {timeout:.0f} s.")
            time.sleep(2)
    if code != 200:
        raise SystemExit(f"JupyterLab refused its own token: HTTP {code}.")
    if call(base, "/api/status", None)[0] != 403:
        raise SystemExit("JupyterLab answered without a token: it must refuse.")
    code, page = call(base, f"/lab/tree/notebooks?token={token}", None)
    if code != 200 or b"JupyterLab" not in page:
        raise SystemExit(f"the Lab page did not load: HTTP {code}.")
    code, body = call(base, "/api/contents/notebooks", token)
    names = {c["name"] for c in json.loads(body)["content"]} if code == 200 else set()
    if "05-namespaces.ipynb" not in names:
        raise SystemExit(f"the notebooks are not served (HTTP {code}, {sorted(names)}).")


async def run_cell(base: str, token: str, kid: str, code: str, timeout: float) -> str:
    ws_url = base.replace("http://", "ws://") + f"/api/kernels/{kid}/channels"
    conn = await websocket_connect(HTTPRequest(ws_url, headers={"Authorization": f"token {token}"}))
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "e2e",
                   "session": uuid.uuid4().hex, "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False}}))
    out, status = [], None
    deadline = time.monotonic() + timeout
    while status is None or not out:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"the cell did not finish within {timeout:.0f} s (output so far: {out}).")
        raw = await asyncio.wait_for(conn.read_message(), left)
        if raw is None:
            raise SystemExit("the kernel websocket closed before the cell finished.")
        msg = json.loads(raw)
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        kind = msg["header"]["msg_type"]
        if kind == "stream":
            out.append(msg["content"]["text"])
        elif kind == "error":
            raise SystemExit(f"the cell failed: {msg['content']['ename']}: {msg['content']['evalue']}")
        elif kind == "execute_reply":
            status = msg["content"]["status"]
    conn.close()
    return "".join(out)


def main(port: str, token: str, machine: str) -> None:
    base = f"http://127.0.0.1:{port}"
    wait_for_lab(base, token)
    code, body = call(base, "/api/kernels", token, "POST")
    if code != 201:
        raise SystemExit(f"starting a kernel: HTTP {code}.")
    kid = json.loads(body)["id"]
    try:
        out = asyncio.run(run_cell(base, token, kid, CELL, timeout=300))
    finally:
        call(base, f"/api/kernels/{kid}", token, "DELETE")
    want = f"lab-kernel {machine} 0 sandbox"
    if out.strip() != want:
        raise SystemExit(f"the cell printed {out.strip()!r}, expected {want!r}.")
    print(f"JupyterLab on {base}: 200 with the token, 403 without, notebooks served, "
          f"a kernel ran a cell in the guest ({out.strip()})")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: jupyter_check.py PORT TOKEN MACHINE")
    main(*sys.argv[1:])
