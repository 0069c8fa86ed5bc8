"""CNI errors as learners meet them: the plugin's error JSON (SPEC.md §2 "Errors",
§5 "Error": ``{cniVersion, code, msg, details}``) plus one sentence that says what it means
and what to do."""
from __future__ import annotations

from typing import Any

from sandbox.errors import SandboxError

# SPEC.md "Well-known Error Codes" (0-99 reserved); 999 is libcni's ErrInternal, what the
# upstream plugins return for nearly every runtime failure.
CODES = {
    1: "incompatible CNI version",
    2: "unsupported field in network configuration",
    3: "container unknown or does not exist",
    4: "invalid or missing environment variables",
    5: "I/O failure",
    6: "failed to decode content",
    7: "invalid network configuration",
    11: "try again later",
    50: "plugin not available",
    51: "plugin not available; existing containers may have limited connectivity",
    999: "internal plugin error",
}

_BY_CODE = {
    1: "The plugin does not speak this configuration's cniVersion: change cniVersion to one it "
       "lists ({versions}) or use plugins that support it (our plugins speak 1.1.0).",
    2: "The configuration has a key or value this plugin does not accept: fix it in the .conf file.",
    3: "The plugin does not know this container, so there is nothing to clean up.",
    4: "The runtime passed wrong CNI_* variables: check the container ID, netns path and "
       "interface name (at most 15 characters, no '/', ':' or spaces).",
    5: "The plugin could not read or write something it needs (stdin, its state directory).",
    6: "The plugin could not parse what it was given: the configuration is not the JSON it expects.",
    7: "The network configuration is invalid: fix the .conf/.conflist file it came from.",
    11: "A temporary condition: try the same command again in a moment.",
    50: "The plugin says it cannot serve requests right now; ADD would fail.",
    51: "The plugin is degraded; new ADDs would fail and existing containers may lose connectivity.",
}

# Recognisable messages of the upstream plugins (code 999) and of ours.
_BY_MESSAGE = [
    ("no IP addresses available", "The network's address range is used up: delete containers "
     "with 'sandbox net del' or free leaked addresses with 'sandbox net gc' (or use a larger subnet)."),
    ("already exists", "An interface with this name already exists in the container's network "
     "namespace: delete that attachment first or pass another --ifname."),
    ("duplicate allocation", "host-local already gave this container+interface an address: "
     "DEL it before adding it again."),
    ("failed to find plugin", "The plugin executable is not in CNI_PATH: install "
     "containernetworking-plugins (/usr/lib/cni) or pass --cni-path, e.g. $(sandbox net plugin-dir)."),
    ("Required prevResult missing", "CHECK needs the cached ADD result: ADD through this runtime "
     "first (the cache is <cache dir>/results/<net>-<container>-<ifname>)."),
    ("does not allow CHECK", "CHECK exists from cniVersion 0.4.0 on: raise cniVersion in the config."),
    ("unknown args", "CNI_ARGS has a key this plugin does not know: add IgnoreUnknown=1 to --args."),
    ("unknown CNI_COMMAND", "This plugin predates the command (GC/STATUS are spec 1.1.0; Debian's "
     "plugins stop at 1.0.0)."),
]


def explain(code: int, msg: str, versions: list[str] | None = None) -> str:
    """A sentence a learner understands, for an error code and message."""
    for needle, sentence in _BY_MESSAGE:
        if needle.lower() in msg.lower():
            return sentence
    if code in _BY_CODE:
        return _BY_CODE[code].format(versions=", ".join(versions or []) or "see its VERSION answer")
    return "The plugin failed; its message and details above say why (stderr has its logs)."


class CniError(SandboxError):
    """A plugin (or the runtime acting for one) failed.

    ``code``, ``msg`` and ``details`` are the spec's error fields; ``plugin`` and ``command``
    say which exec failed; ``stderr`` keeps the plugin's logs; ``explanation`` is the sentence
    for learners."""

    def __init__(self, code: int, msg: str, details: str = "", *, plugin: str = "",
                 command: str = "", network: str = "", stderr: str = "",
                 versions: list[str] | None = None, explanation: str | None = None) -> None:
        self.code, self.msg, self.details = code, msg, details
        self.plugin, self.command, self.network, self.stderr = plugin, command, network, stderr
        self.explanation = explanation or explain(code, msg, versions)
        where = " ".join(x for x in (f"{command}" if command else "",
                                     f"network '{network}'" if network else "",
                                     f"plugin '{plugin}'" if plugin else "") if x)
        head = f"CNI error {code} ({CODES.get(code, 'plugin-specific')})"
        text = f"{head}{' in ' + where if where else ''}: {msg}"
        if details:
            text += f" [details: {details}]"
        super().__init__(text + ".", hint=self.explanation)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.details:
            out["details"] = self.details
        return out
