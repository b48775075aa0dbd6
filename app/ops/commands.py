"""Loads the operations commands, each of which registers itself on ``app.cli.cli``."""

from app.ops import backup_cli, config_cli, tls_cli  # noqa: F401
