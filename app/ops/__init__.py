"""Running the server on a lab machine: configuration and the secret key's fingerprint,
backups, outage recovery, health and metrics, TLS for the LAN.

Its commands register themselves on the ``cact`` command (``app/ops/commands.py``) and its
background work starts from ``app/ops/lifecycle.py``.
"""
