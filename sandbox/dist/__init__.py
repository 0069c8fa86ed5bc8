"""Distribution: from an image name to verified bytes on disk (slides 25–29; appc 0.8.11
discovery.md).

- :mod:`~sandbox.dist.discovery` — meta discovery: name → templates → URLs;
- :mod:`~sandbox.dist.fetch` — rkt's fetch order: signature first, verify, import;
- :mod:`~sandbox.dist.serve` — an offline discovery server for the labs.
"""
