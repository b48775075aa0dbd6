"""passages: reading passages of a bank version, and the passage an item is asked about

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'bank_passages',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('bank_version_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('title', sa.String(length=200), nullable=False),
        sa.Column('content', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['bank_version_id'], ['bank_versions.id'],
                                name=op.f('fk_bank_passages_bank_version_id_bank_versions'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_bank_passages')),
        sa.UniqueConstraint('bank_version_id', 'code',
                            name=op.f('uq_bank_passages_bank_version_id_code')),
    )
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('passage', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('items', schema=None) as batch_op:
        batch_op.drop_column('passage')
    op.drop_table('bank_passages')
