"""(commands of this area are added here)"""

from app.cli import cli  # noqa: F401
