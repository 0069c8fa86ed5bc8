"""Container Standards Lab: a small, fully inspectable container runtime for teaching.

One module per spec concept (see README.md "Where things live"): ``aci``, ``manifest``,
``store``, ``render``, ``pgp``/``trust``, ``discovery``, ``pod``, ``netns``, ``cni``, ``oci``,
``viz``. Every operation can record the steps it takes in a :class:`sandbox.steps.Steps`.
"""
__version__ = "0.1.0"
