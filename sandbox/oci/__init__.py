"""The road to OCI: an appc image as an OCI image layout, an OCI layout as an ACI, and an app as
an OCI runtime bundle (slides 21–39).

OCI image-spec (v1.0/1.1): ``image-layout.md`` (``oci-layout``, ``index.json``, ``blobs/sha256``),
``manifest.md``, ``config.md``, ``layer.md`` (whiteouts); runtime-spec ``config.md``,
``config-linux.md``. The appc side is the kit's own (image, render).

The contrast the slides draw is visible in the artefacts:

* appc: one archive, one ID — sha512 of the whole uncompressed tar; dependencies by name.
* OCI: a Merkle DAG — index → manifest → config + layers, each addressed by its digest (sha256 by
  convention; image-spec registers sha512 too); an image built from dependencies becomes one
  layer per dependency ("dependencies ≈ layers").

- :mod:`~sandbox.oci.layout` — blobs, descriptors, index and manifests;
- :mod:`~sandbox.oci.layer` — layers as tar changesets with whiteouts;
- :mod:`~sandbox.oci.appc` — export, import and runtime bundles.
"""
from sandbox.oci.appc import (
                              Exported,
                              Imported,
                              appc_arch_to_oci,
                              compare_formats,
                              export_image,
                              image_config,
                              import_layout,
                              make_bundle,
                              manifest_from_config,
                              oci_arch_to_appc,
                              round_trip_report,
                              runtime_config,
)
from sandbox.image.extract import OPAQUE, WHITEOUT
from sandbox.oci.layer import apply_layer, layer_paths, write_layer
from sandbox.oci.layout import (
                              APPC_NAME,
                              MT_CONFIG,
                              MT_DOCKER_LAYER,
                              MT_INDEX,
                              MT_LAYER_GZIP,
                              MT_LAYER_TAR,
                              MT_MANIFEST,
                              REF_NAME,
                              Descriptor,
                              Layout,
                              OciError,
                              digest_of,
                              parse_ref,
)

__all__ = ["APPC_NAME", "MT_CONFIG", "MT_DOCKER_LAYER", "MT_INDEX", "MT_LAYER_GZIP", "MT_LAYER_TAR",
           "MT_MANIFEST", "OPAQUE", "REF_NAME", "WHITEOUT", "Descriptor", "Exported", "Imported",
           "Layout", "OciError", "appc_arch_to_oci", "apply_layer", "compare_formats",
           "export_image", "image_config", "import_layout", "layer_paths", "make_bundle",
           "manifest_from_config", "oci_arch_to_appc", "parse_ref", "digest_of", "round_trip_report",
           "runtime_config", "write_layer"]
