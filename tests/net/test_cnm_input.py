"""The CNM remote driver facing bad requests (the red run of 2026-12-06): fields of the wrong
JSON type, IDs that are not names, addresses that are not addresses, a Content-Length int() takes
but RFC 9110 does not, and a caller that stops sending. Every answer is {"Err": <a sentence of
the driver's>} — never a Python exception's name — and no caller can hold the driver (it answers
one request at a time).

Before: {"NetworkID": []} was "TypeError: unhashable type: 'list'", {"IPv4Data": "x"} an
AttributeError, "../x" a NetlinkError, "Content-Length: 1_0" waited for a body for ever, and a
caller that sent half a request stopped the driver for every other caller; a caller that hung up
left a traceback in driver.stderr."""
from __future__ import annotations

import socket
import time
from typing import Callable

import pytest

from sandbox import bounded
from sandbox.net.cnm.driver import DriverProcess

from test_cnm import post, sockdir, start  # noqa: F401 - fixtures (tests/net is on sys.path)

pytestmark = [pytest.mark.root]

BAD = [
    ("/IpamDriver.RequestAddress", {"PoolID": []}),
    ("/IpamDriver.RequestPool", {"AddressSpace": "s", "Pool": ["10.0.0.0/24"]}),
    ("/IpamDriver.RequestPool", {"AddressSpace": "s", "V6": "no"}),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": ["a"]}),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "n1", "IPv4Data": "x"}),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "n1", "IPv4Data": [None]}),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "n1", "IPv4Data": [{"Gateway": 5}]}),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "n1", "IPv4Data": [{"Gateway": "not-an-ip"}]}),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "../../x",
                                      "IPv4Data": [{"Gateway": "10.61.0.1/24"}]}),
    ("/NetworkDriver.CreateNetwork", {"NetworkID": "a" * 500}),
    ("/NetworkDriver.DeleteNetwork", {"NetworkID": {}}),
    ("/NetworkDriver.CreateEndpoint", {"NetworkID": "n", "EndpointID": 5}),
    ("/NetworkDriver.CreateEndpoint", {"NetworkID": "n", "EndpointID": "e", "Interface": []}),
    ("/NetworkDriver.Join", {"NetworkID": "n", "EndpointID": "e", "SandboxKey": 1}),
]


def test_bad_requests_get_the_drivers_own_error(start: Callable[..., DriverProcess]) -> None:
    d = start()
    for path, body in BAD:
        status, reply = post(d.socket, path, body)
        assert status in (400, 500) and isinstance(reply, dict), (path, body, reply)
        err = reply.get("Err", "")
        assert err and not any(w in err for w in ("TypeError", "AttributeError", "NetlinkError",
                                                  "KeyError", "ValueError")), (path, body, err)
    # the network ID check keeps the kernel out of it: no bridge was made for any of them
    assert post(d.socket, "/Plugin.Activate")[0] == 200
    assert d.proc.poll() is None


@pytest.mark.parametrize("length", ["1_0", "+2", "2_", "9" * 30, "-1"])
def test_content_length_must_be_a_plain_number(start: Callable[..., DriverProcess],
                                               length: str) -> None:
    d = start()
    head = (f"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: {length}\r\n"
            "Connection: close\r\n\r\n{}")
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(15)
        s.connect(str(d.socket))
        s.sendall(head.encode())
        got = s.recv(65536)
    assert got.split(b"\r\n")[0].split()[1] in (b"413", b"400"), got[:200]


# Not `serial`: it waits out CNM_REQUEST_SECONDS (10 s) and its bound leaves 10 s more, far
# beyond what a loaded machine adds; beside other tests those 10 s of waiting cost nothing.
def test_a_caller_that_stops_sending_does_not_hold_the_driver(
        start: Callable[..., DriverProcess]) -> None:
    d = start()             # a process of its own: its bound is CNM_REQUEST_SECONDS's default
    with socket.socket(socket.AF_UNIX) as idle:
        idle.connect(str(d.socket))
        idle.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\n")     # never finished
        t0 = time.monotonic()
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(60)
            s.connect(str(d.socket))
            s.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n"
                      b"Connection: close\r\n\r\n")
            got = s.recv(65536)
        assert got.startswith(b"HTTP/1.1 200 ")
        assert time.monotonic() - t0 < bounded.CNM_REQUEST_SECONDS.default + 10
    with socket.socket(socket.AF_UNIX) as gone:      # hangs up before its answer
        gone.connect(str(d.socket))
        gone.sendall(b"POST /Plugin.Activate HTTP/1.1\r\nHost: p\r\nContent-Length: 0\r\n\r\n")
    assert post(d.socket, "/Plugin.Activate")[0] == 200
    d.stop()
    err = (d.state_dir / "driver.stderr").read_text()
    assert "Traceback" not in err, err[-2000:]
