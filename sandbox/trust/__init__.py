"""Trust: OpenPGP signatures over images and the keys trusted per name prefix (slides 15, 25–29;
appc 0.8.11 signatures.md; rkt's trust store).

- :mod:`~sandbox.trust.pgp` — OpenPGP keys and detached signatures (RFC 4880), readable;
- :mod:`~sandbox.trust.truststore` — which key may sign which image names.
"""
