"""validity decisions: an admin's acceptance of an attempt that is not scoreable

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 20:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'validity_decisions',
        sa.Column('attempt_id', sa.Integer(), nullable=False),
        sa.Column('decision', sa.String(length=16), nullable=False),
        sa.Column('reason', sa.String(length=2000), nullable=False),
        sa.Column('decided_by', sa.String(length=200), nullable=False),
        sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'],
                                name=op.f('fk_validity_decisions_attempt_id_attempts'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('attempt_id', name=op.f('pk_validity_decisions')),
    )


def downgrade() -> None:
    op.drop_table('validity_decisions')
