"""``sandbox serve DIR [--port N] [--tls]``: an offline appc discovery server on 127.0.0.1."""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from sandbox.config import sandbox_dir

# the top-level commands register() adds (the CLI imports a module only for its commands)
COMMANDS = ("serve",)


def cmd_serve(args: argparse.Namespace) -> int:
    from sandbox.dist import serve
    cert_dir = args.cert_dir or (str(sandbox_dir() / "serve-tls") if args.tls else None)
    srv = serve.DiscoveryServer(args.dir, port=args.port, tls=args.tls, cert_dir=cert_dir,
                                max_age=args.max_age)
    srv.start()
    try:
        print(f"Serving {args.dir} for appc discovery at {srv.base_url} (127.0.0.1 only).")
        for p in srv.problems:
            print(f"  skipped: {p}", file=sys.stderr)
        if not srv.images:
            print("  No .aci files found; add some and restart.", file=sys.stderr)
        for img in srv.images:
            labels = ",".join(f"{k}={v}" for k, v in img.labels.items())
            sig = "signed" if img.asc else "UNSIGNED (fetch needs --insecure-options=image)"
            print(f"  {img.name} [{labels}] {sig}  <- {img.path.name}")
        for k in srv.keys:
            print(f"  public key {srv.base_url}{k.url_path}")
        if srv.tls_material:
            print(f"CA certificate: {srv.tls_material.ca_cert}")
        flags = f"--discovery-port {srv.port}" + (f" --ca-file {srv.ca_file}" if srv.tls
                                                   else " --insecure-options=http")
        local = [n for n in srv.names if n.startswith("localhost/")]
        if local:
            print(f"Try: sandbox fetch {local[0]} {flags}")
        elif srv.names:
            print("Note: only names starting with localhost/ resolve to this server.")
        print("Press Ctrl-C to stop.", flush=True)
        _wait_for_signal()
        print("Stopped.", file=sys.stderr)
    finally:
        srv.stop()
    return 0


def _wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM (also when started in the background, where a shell
    ignores SIGINT); the previous handlers are restored afterwards."""
    done = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        while not done.wait(0.5):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("serve", help="serve a directory of ACIs for appc discovery on 127.0.0.1")
    p.add_argument("dir", metavar="DIR", help="directory with .aci files, their .aci.asc and public keys")
    p.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    p.add_argument("--tls", action="store_true",
                   help="https with a throwaway CA (its path is printed; give it to fetch --ca-file)")
    p.add_argument("--cert-dir", metavar="DIR", help="where --tls writes ca.pem (default $SANDBOX_DIR/serve-tls)")
    p.add_argument("--max-age", type=int, default=0,
                   help="Cache-Control max-age for images and signatures (seconds)")
    p.set_defaults(func=cmd_serve)
