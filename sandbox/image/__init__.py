"""Images: the App Container Image format and the content-addressed store (slides 21–30; appc
0.8.11 spec aci.md §Image Archives, §Image ID, §Image Manifest; types.md).

- :mod:`~sandbox.image.types` — AC Identifier, AC Name, labels, the os/arch values;
- :mod:`~sandbox.image.manifest` — the ImageManifest and PodManifest schemas;
- :mod:`~sandbox.image.aci` — build, validate and identify archives (the image ID);
- :mod:`~sandbox.image.store` — the content-addressed image store;
- :mod:`~sandbox.image.catalog` — the lab images, built offline from Debian's busybox-static.
"""
