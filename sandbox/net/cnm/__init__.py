"""CNM, the Container Network Model (seed slides 52–59): Docker's libnetwork and its *remote
driver* protocol, small enough to read, speaking the real wire format.

* :mod:`~sandbox.net.cnm.api` — the protocol: every ``NetworkDriver.*`` and ``IpamDriver.*``
  endpoint with its request and reply (moby/libnetwork ``docs/remote.md``, ``docs/ipam.md``,
  ``drivers/remote/api``, ``ipams/remote/api``), and the order libnetwork calls them in.
* :mod:`~sandbox.net.cnm.driver` — a remote driver: a long-running HTTP service on a unix socket
  (slide 56) that is both a bridge ``NetworkDriver`` and an ``IpamDriver``. It acts only in the
  netns it runs in (the node): bridges, veth pairs, NAT. It never opens a container's netns.
* :mod:`~sandbox.net.cnm.controller` — the libnetwork side: activates the plugin, asks the IPAM
  driver for pools and addresses, calls the driver, and *itself* configures the sandbox: moves
  the interface the driver made into the container's netns, names it, gives it its MAC, address
  and routes (slide 56: the driver does not configure the sandbox; libnetwork does).

CNI does the opposite (:mod:`sandbox.net.cni`): the plugin is exec'd once per call, enters the
container's netns itself and configures it with the full Linux network stack.
"""
