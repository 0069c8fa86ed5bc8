"""The remote driver protocol of libnetwork, as data (moby/libnetwork ``docs/remote.md`` and
``docs/ipam.md``; the Go structs in ``drivers/remote/api/api.go`` and ``ipams/remote/api/api.go``).

Transport: HTTP/1.1 over a unix socket (Docker looks for ``/run/docker/plugins/NAME.sock``).
Every call is ``POST /<Interface>.<Method>`` with a JSON body; the calls that take no argument
(``Plugin.Activate``, both ``GetCapabilities``, ``GetDefaultAddressSpaces``) send an empty body.
The daemon's client asks for ``Accept: application/vnd.docker.plugins.v1.2+json``.

Errors: a driver that cannot do what it is asked answers non-200 with ``{"Err": "…"}`` (the
client reads that key from any error body). An unknown method is ``404 Not Found``: libnetwork
then knows the driver predates it — for the two optional external-connectivity calls that
counts as success.
"""
from __future__ import annotations

from dataclasses import dataclass

ACCEPT = "application/vnd.docker.plugins.v1.2+json"
CONTENT_TYPE = ACCEPT
MAX_BODY = 1 << 20             # bytes: the driver refuses bigger requests (413)

# The JSON types of the request fields (the Go structs' types: what json.Unmarshal enforces in
# a Go driver). One shape for every call: the protocol gives a field name one meaning throughout.
REQUEST_SHAPE = {
    "NetworkID": str, "EndpointID": str, "SandboxKey": str, "Options": dict,
    "IPv4Data": [{"AddressSpace": str, "Pool": str, "Gateway": str, "AuxAddresses": dict}],
    "IPv6Data": [{"AddressSpace": str, "Pool": str, "Gateway": str, "AuxAddresses": dict}],
    "Interface": {"Address": str, "AddressIPv6": str, "MacAddress": str},
    "PoolID": str, "AddressSpace": str, "Pool": str, "SubPool": str, "V6": bool,
    "Address": str,
}
# IDs name bridges, veths and state: libnetwork's are 64 hex digits
ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z"

NETWORK_DRIVER = "NetworkDriver"
IPAM_DRIVER = "IpamDriver"
GATEWAY_REQUEST = {"RequestAddressType": "com.docker.network.gateway"}  # ipamapi + netlabel
SCOPES = ("local", "global")


@dataclass(frozen=True)
class Endpoint:
    """One URL of the protocol."""

    path: str                  # "/NetworkDriver.Join"
    request: tuple[str, ...]   # the keys of the JSON body ("" = empty body)
    reply: tuple[str, ...]     # the keys of a successful reply ({} = empty object)
    when: str                  # when libnetwork calls it
    optional: bool = False     # a 404 is fine (the driver does not implement it)

    @property
    def interface(self) -> str:
        return self.path[1:].split(".", 1)[0]

    @property
    def method(self) -> str:
        return self.path.split(".", 1)[1]


ENDPOINTS: list[Endpoint] = [
    Endpoint("/Plugin.Activate", (), ("Implements",),
             "once, when the plugin is first used: which APIs it implements"),
    # -- NetworkDriver (docs/remote.md)
    Endpoint("/NetworkDriver.GetCapabilities", (), ("Scope", "ConnectivityScope"),
             "after Activate: 'local' or 'global' (anything else fails registration)"),
    Endpoint("/NetworkDriver.AllocateNetwork", ("NetworkID", "Options", "IPv4Data", "IPv6Data"),
             ("Options",), "swarm manager only: reserve cluster-wide resources of a network",
             optional=True),
    Endpoint("/NetworkDriver.FreeNetwork", ("NetworkID",), (),
             "swarm manager only: release what AllocateNetwork reserved", optional=True),
    Endpoint("/NetworkDriver.CreateNetwork", ("NetworkID", "Options", "IPv4Data", "IPv6Data"), (),
             "network create, after the IPAM driver gave the pool and the gateway"),
    Endpoint("/NetworkDriver.DeleteNetwork", ("NetworkID",), (),
             "network rm, after the IPAM driver released the gateway and the pool"),
    Endpoint("/NetworkDriver.CreateEndpoint", ("NetworkID", "EndpointID", "Options", "Interface"),
             ("Interface",),
             "container connect, after IPAM gave the address; the reply may only fill empty fields"),
    Endpoint("/NetworkDriver.EndpointOperInfo", ("NetworkID", "EndpointID"), ("Value",),
             "docker network inspect: operational data of an endpoint", optional=True),
    Endpoint("/NetworkDriver.DeleteEndpoint", ("NetworkID", "EndpointID"), (),
             "container disconnect, after Leave; then IPAM releases the address"),
    Endpoint("/NetworkDriver.Join", ("NetworkID", "EndpointID", "SandboxKey", "Options"),
             ("InterfaceName", "Gateway", "GatewayIPv6", "StaticRoutes", "DisableGatewayService"),
             "container connect, after CreateEndpoint: the driver names a host interface; "
             "libnetwork moves it into the sandbox"),
    Endpoint("/NetworkDriver.Leave", ("NetworkID", "EndpointID"), (),
             "container disconnect: libnetwork then takes the interface out of the sandbox"),
    Endpoint("/NetworkDriver.ProgramExternalConnectivity", ("NetworkID", "EndpointID", "Options"), (),
             "after Join, for the sandbox's gateway endpoint: NAT, port mappings", optional=True),
    Endpoint("/NetworkDriver.RevokeExternalConnectivity", ("NetworkID", "EndpointID"), (),
             "before Leave, undoing ProgramExternalConnectivity", optional=True),
    Endpoint("/NetworkDriver.DiscoverNew", ("DiscoveryType", "DiscoveryData"), (),
             "a node joined the cluster (DiscoveryType 1)", optional=True),
    Endpoint("/NetworkDriver.DiscoverDelete", ("DiscoveryType", "DiscoveryData"), (),
             "a node left the cluster", optional=True),
    # -- IpamDriver (docs/ipam.md)
    Endpoint("/IpamDriver.GetCapabilities", (), ("RequiresMACAddress", "RequiresRequestReplay"),
             "registration of the IPAM driver (a 404 means no capabilities)", optional=True),
    Endpoint("/IpamDriver.GetDefaultAddressSpaces", (),
             ("LocalDefaultAddressSpace", "GlobalDefaultAddressSpace"),
             "registration: the address spaces local and global networks draw from"),
    Endpoint("/IpamDriver.RequestPool", ("AddressSpace", "Pool", "SubPool", "Options", "V6"),
             ("PoolID", "Pool", "Data"),
             "network create, first: the same request twice must give the same PoolID"),
    Endpoint("/IpamDriver.ReleasePool", ("PoolID",), (), "network rm, last IPAM call"),
    Endpoint("/IpamDriver.RequestAddress", ("PoolID", "Address", "Options"), ("Address", "Data"),
             "network create (the gateway) and every container connect (its address)"),
    Endpoint("/IpamDriver.ReleaseAddress", ("PoolID", "Address"), (),
             "container disconnect (its address) and network rm (the gateway)"),
]

BY_PATH = {e.path: e for e in ENDPOINTS}


def endpoint(path: str) -> Endpoint:
    return BY_PATH[path if path.startswith("/") else "/" + path]


# The order libnetwork calls them in, per operation (read off controller.go, network.go,
# endpoint.go, sandbox.go; wave2.md §1). "·" marks what libnetwork does itself in between.
SEQUENCES: dict[str, list[str]] = {
    "plugin activation": ["Plugin.Activate", "NetworkDriver.GetCapabilities",
                          "IpamDriver.GetCapabilities", "IpamDriver.GetDefaultAddressSpaces"],
    "network create": ["IpamDriver.RequestPool", "IpamDriver.RequestAddress (gateway)",
                       "NetworkDriver.CreateNetwork"],
    "container connect": ["IpamDriver.RequestAddress", "NetworkDriver.CreateEndpoint",
                          "NetworkDriver.Join",
                          "· libnetwork moves the interface into the sandbox, renames it, sets "
                          "MAC, address, routes",
                          "NetworkDriver.ProgramExternalConnectivity"],
    "container disconnect": ["NetworkDriver.RevokeExternalConnectivity", "NetworkDriver.Leave",
                             "· libnetwork moves the interface back out of the sandbox",
                             "NetworkDriver.DeleteEndpoint", "IpamDriver.ReleaseAddress"],
    "network rm": ["IpamDriver.ReleaseAddress (gateway)", "IpamDriver.ReleasePool",
                   "NetworkDriver.DeleteNetwork"],
}
