"""Running the server on a lab machine: configuration and the secret key's fingerprint,
backups, outage recovery, health and metrics, TLS for the LAN.

Its commands are part of the ``cact`` command (``app/cli/backup.py``, ``config.py``,
``tls.py``), which calls it and is never imported by it; its background work starts from
``app/ops/lifecycle.py``.
"""
