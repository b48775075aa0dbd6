"""prepared attempts: forms drawn before the morning, and when a session was prepared

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05 02:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD = ('not_started', 'active', 'paused', 'submitted', 'expired')
NEW = ('prepared', *OLD)


def _state(values: tuple[str, ...]) -> sa.Enum:
    return sa.Enum(*values, name='attempt_state', native_enum=False, create_constraint=True)


def upgrade() -> None:
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.alter_column('state', type_=_state(NEW), existing_type=_state(OLD),
                              existing_nullable=False)
    with op.batch_alter_table('test_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prepared_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.execute("DELETE FROM attempts WHERE state = 'prepared'")
    with op.batch_alter_table('test_sessions', schema=None) as batch_op:
        batch_op.drop_column('prepared_at')
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.alter_column('state', type_=_state(OLD), existing_type=_state(NEW),
                              existing_nullable=False)
