"""assessment programmes: programmes and their sessions, an admin's choice of the attempt that
counts, key positions, and the job a person had when put on each roster

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 21:54:14.304762
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('key_positions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('unit', sa.String(length=200), nullable=False),
    sa.Column('job_key', sa.String(length=64), nullable=False),
    sa.Column('required', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_key_positions')),
    sa.UniqueConstraint('key', name=op.f('uq_key_positions_key'))
    )
    op.create_table('programmes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('agency', sa.String(length=200), nullable=False),
    sa.Column('purpose', sa.Enum('mapping', 'position', name='programme_purpose', native_enum=False, create_constraint=True), nullable=False),
    sa.Column('starts_on', sa.Date(), nullable=True),
    sa.Column('ends_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_programmes')),
    sa.UniqueConstraint('code', name=op.f('uq_programmes_code'))
    )
    op.create_table('programme_choices',
    sa.Column('programme_id', sa.Integer(), nullable=False),
    sa.Column('participant_id', sa.Integer(), nullable=False),
    sa.Column('attempt_id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=2000), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['attempt_id'], ['attempts.id'], name=op.f('fk_programme_choices_attempt_id_attempts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['participant_id'], ['participants.id'], name=op.f('fk_programme_choices_participant_id_participants'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['programme_id'], ['programmes.id'], name=op.f('fk_programme_choices_programme_id_programmes'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('programme_id', 'participant_id', name=op.f('pk_programme_choices'))
    )
    with op.batch_alter_table('roster_entries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('job_group', sa.Enum('administrator', 'pengawas', 'fungsional', 'pelaksana', name='job_group', native_enum=False, create_constraint=True), nullable=True))
        batch_op.add_column(sa.Column('grade', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('position', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('unit', sa.String(length=200), nullable=True))

    with op.batch_alter_table('test_sessions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('programme_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_test_sessions_programme_id'), ['programme_id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_test_sessions_programme_id_programmes'), 'programmes', ['programme_id'], ['id'], ondelete='SET NULL')

    # The rosters made before this revision: the job the person has now is the best record of
    # the job they had then.
    for column in ('job_group', 'grade', 'position', 'unit'):
        op.execute(f"UPDATE roster_entries SET {column} = (SELECT participants.{column} FROM "
                   "participants WHERE participants.id = roster_entries.participant_id)")


def downgrade() -> None:
    with op.batch_alter_table('test_sessions', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_test_sessions_programme_id_programmes'), type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_test_sessions_programme_id'))
        batch_op.drop_column('programme_id')

    with op.batch_alter_table('roster_entries', schema=None) as batch_op:
        # SQLite copies the table: the CHECK on job_group must go before its column.
        batch_op.drop_constraint(op.f('ck_roster_entries_job_group'), type_='check')
        batch_op.drop_column('unit')
        batch_op.drop_column('position')
        batch_op.drop_column('grade')
        batch_op.drop_column('job_group')

    op.drop_table('programme_choices')
    op.drop_table('programmes')
    op.drop_table('key_positions')
