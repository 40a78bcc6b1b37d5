"""Second-line support, complete: leads pipeline, outbound campaigns, brand incidents, customer merges (issue 17)

Revision ID: 0020_support
Revises: 0019_b2b
"""
from alembic import op  # noqa: F401
import sqlalchemy as sa  # noqa: F401
import opsline.db.base  # noqa: F401
from sqlalchemy import Text  # noqa: F401  (autogenerate renders JSONB(astext_type=Text()))
from sqlalchemy.dialects import postgresql  # noqa: F401

revision = '0020_support'
down_revision = '0019_b2b'
branch_labels = None
depends_on = None


LEAD_OLD = ('new', 'qualified', 'won', 'lost')
LEAD_NEW = ('new', 'qualified', 'handed_over', 'won', 'lost')


def _in(col: str, values: tuple[str, ...]) -> str:
    return f"{col} IN (" + ", ".join(f"'{v}'" for v in values) + ")"


def upgrade() -> None:
    # the leads pipeline (cases/leads.py): the lead lifecycle gains 'handed_over'; value, consent, hand-over and outcome columns
    with op.batch_alter_table('sales_lead') as b:
        b.drop_constraint(op.f('ck_sales_lead_state'), type_='check')
        b.add_column(sa.Column('source', sa.String(length=20), server_default='case', nullable=False))
        b.add_column(sa.Column('contact_name', sa.String(length=200), nullable=True))
        b.add_column(sa.Column('contact_phone', sa.String(length=30), nullable=True))
        b.add_column(sa.Column('contact_email', sa.String(length=200), nullable=True))
        b.add_column(sa.Column('value_minor', sa.BigInteger(), nullable=True))
        b.add_column(sa.Column('currency', sa.String(length=3), nullable=True))
        b.add_column(sa.Column('consent_marketing', sa.Boolean(), server_default=sa.false(), nullable=False))
        b.add_column(sa.Column('consent_channel', sa.String(length=10), nullable=True))
        b.add_column(sa.Column('consent_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True))
        b.add_column(sa.Column('team_code', sa.String(length=40), nullable=True))
        b.add_column(sa.Column('handed_to_kind', sa.String(length=10), nullable=True))
        b.add_column(sa.Column('handed_to', sa.String(length=40), nullable=True))
        b.add_column(sa.Column('handed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True))
        b.add_column(sa.Column('handover_message_id', sa.BigInteger(), nullable=True))
        b.add_column(sa.Column('won_order_id', sa.BigInteger(), nullable=True))
        b.add_column(sa.Column('lost_reason', sa.Text(), nullable=True))
        b.add_column(sa.Column('closed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True))
        b.add_column(sa.Column('campaign_id', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('sales_lead') as b:
        b.create_check_constraint('state', _in('state', LEAD_NEW))
        b.create_check_constraint('source', "source IN ('case','contact','campaign')")
        b.create_check_constraint('handed_to_kind', "handed_to_kind IS NULL OR handed_to_kind IN ('team','partner')")
        b.create_check_constraint('value', 'value_minor IS NULL OR (value_minor >= 0 AND currency IS NOT NULL)')
        b.create_index('ix_sales_lead_state', ['state', 'created_at'], unique=False)

    # the case outcome 'sentiment recovered' (cases/trends.py)
    with op.batch_alter_table('support_case') as b:
        b.add_column(sa.Column('sentiment_recovered', sa.Boolean(), nullable=True))

    # retention joined up (cases/retention.py): the reason, and the change order an accepted offer placed
    with op.batch_alter_table('retention_offer') as b:
        b.add_column(sa.Column('reason_code', sa.String(length=30), nullable=True))
        b.add_column(sa.Column('change_order_id', sa.BigInteger(), nullable=True))

    # outbound campaigns (cases/campaigns.py)
    op.create_table('campaign',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('filter_kind', sa.String(length=30), nullable=False),
    sa.Column('filter_params', opsline.db.base.JSONType, nullable=False),
    sa.Column('script', sa.Text(), nullable=False),
    sa.Column('offers', opsline.db.base.JSONType, nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('target_count', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('launched_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('draft', 'running', 'completed', 'cancelled')", name=op.f('ck_campaign_state')),
    sa.CheckConstraint("filter_kind IN ('contract_ending','product_retiring','outage_area')", name=op.f('ck_campaign_filter_kind')),
    sa.CheckConstraint("channel IN ('call','email')", name=op.f('ck_campaign_channel')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign'))
    )
    op.create_table('campaign_target',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('campaign_id', sa.BigInteger(), nullable=False),
    sa.Column('account_id', sa.BigInteger(), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('offer', sa.String(length=200), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('message_id', sa.BigInteger(), nullable=True),
    sa.Column('lead_id', sa.BigInteger(), nullable=True),
    sa.Column('agent', sa.String(length=120), nullable=True),
    sa.Column('outcome_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("outcome IN ('pending','no_answer','reached','accepted','declined','capped','opted_out')", name=op.f('ck_campaign_target_outcome')),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], name=op.f('fk_campaign_target_account_id_account')),
    sa.ForeignKeyConstraint(['campaign_id'], ['campaign.id'], name=op.f('fk_campaign_target_campaign_id_campaign')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_campaign_target')),
    sa.UniqueConstraint('campaign_id', 'account_id', name=op.f('uq_campaign_target_campaign_id_account_id'))
    )
    op.create_index('ix_campaign_target_outcome', 'campaign_target', ['campaign_id', 'outcome'], unique=False)
    op.create_table('brand_incident',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('reference', sa.String(length=20), nullable=True),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('severity', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('owner', sa.String(length=120), nullable=False),
    sa.Column('stakeholders', opsline.db.base.JSONType, nullable=False),
    sa.Column('raised_from_case_id', sa.BigInteger(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=True),
    sa.Column('opened_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('opened_by', sa.String(length=120), nullable=False),
    sa.Column('closed_at', opsline.db.base.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.CheckConstraint("state IN ('open', 'contained', 'closed')", name=op.f('ck_brand_incident_state')),
    sa.CheckConstraint('severity BETWEEN 1 AND 3', name=op.f('ck_brand_incident_severity')),
    sa.CheckConstraint("state <> 'closed' OR summary IS NOT NULL", name=op.f('ck_brand_incident_closed_summary')),
    sa.ForeignKeyConstraint(['raised_from_case_id'], ['support_case.id'], name=op.f('fk_brand_incident_raised_from_case_id_support_case')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_brand_incident')),
    sa.UniqueConstraint('reference', name=op.f('uq_brand_incident_reference'))
    )
    op.create_index('ix_brand_incident_state', 'brand_incident', ['state', 'opened_at'], unique=False)
    op.create_table('brand_incident_case',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('incident_id', sa.BigInteger(), nullable=False),
    sa.Column('case_id', sa.BigInteger(), nullable=False),
    sa.Column('linked_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('linked_by', sa.String(length=120), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['support_case.id'], name=op.f('fk_brand_incident_case_case_id_support_case')),
    sa.ForeignKeyConstraint(['incident_id'], ['brand_incident.id'], name=op.f('fk_brand_incident_case_incident_id_brand_incident')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_brand_incident_case')),
    sa.UniqueConstraint('incident_id', 'case_id', name=op.f('uq_brand_incident_case_incident_id_case_id'))
    )
    op.create_index('ix_brand_incident_case_case_id', 'brand_incident_case', ['case_id'], unique=False)
    op.create_table('trend_subscription',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('email', sa.String(length=200), nullable=False),
    sa.Column('weeks', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=120), nullable=False),
    sa.Column('created_at', opsline.db.base.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_sent_for', sa.Date(), nullable=True),
    sa.CheckConstraint('weeks BETWEEN 1 AND 104', name=op.f('ck_trend_subscription_weeks')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_trend_subscription')),
    sa.UniqueConstraint('email', name=op.f('uq_trend_subscription_email'))
    )


def downgrade() -> None:
    op.drop_index('ix_brand_incident_case_case_id', table_name='brand_incident_case')
    op.drop_table('brand_incident_case')
    op.drop_index('ix_brand_incident_state', table_name='brand_incident')
    op.drop_table('brand_incident')
    op.drop_table('trend_subscription')
    op.drop_index('ix_campaign_target_outcome', table_name='campaign_target')
    op.drop_table('campaign_target')
    op.drop_table('campaign')
    with op.batch_alter_table('retention_offer') as b:
        b.drop_column('change_order_id')
        b.drop_column('reason_code')
    with op.batch_alter_table('support_case') as b:
        b.drop_column('sentiment_recovered')
    op.execute("UPDATE sales_lead SET state = 'qualified' WHERE state = 'handed_over'")
    with op.batch_alter_table('sales_lead') as b:
        b.drop_index('ix_sales_lead_state')
        b.drop_constraint(op.f('ck_sales_lead_value'), type_='check')
        b.drop_constraint(op.f('ck_sales_lead_handed_to_kind'), type_='check')
        b.drop_constraint(op.f('ck_sales_lead_source'), type_='check')
        b.drop_constraint(op.f('ck_sales_lead_state'), type_='check')
    with op.batch_alter_table('sales_lead') as b:
        for col in ('campaign_id', 'closed_at', 'lost_reason', 'won_order_id', 'handover_message_id', 'handed_at', 'handed_to', 'handed_to_kind',
                    'team_code', 'consent_at', 'consent_channel', 'consent_marketing', 'currency', 'value_minor', 'contact_email', 'contact_phone',
                    'contact_name', 'source'):
            b.drop_column(col)
        b.create_check_constraint('state', _in('state', LEAD_OLD))
