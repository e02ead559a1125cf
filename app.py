"""The Chalice app: creates it, registers the blueprints and the event handlers; no logic lives here."""
from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from chalice.app import Chalice, Rate, SNSEvent

from chalicelib.api import admin_page, public, staff, webhooks
from chalicelib.api import customers as customers_api
from chalicelib.api import knowledge as knowledge_api
from chalicelib.api import notifications as notifications_api
from chalicelib.api import qa as qa_api
from chalicelib.api import triage as triage_api
from chalicelib.api import work_orders as work_orders_api
from chalicelib.api.errors import contract_error_shape
from chalicelib.handlers import email as email_handlers
from chalicelib.handlers import jobs
from chalicelib.wiring import get_container

app = Chalice(app_name="kefu", configure_logs=False)
app.experimental_feature_flags.update(["BLUEPRINTS"])
logger = Logger(service="kefu")

app.register_middleware(contract_error_shape, "http")
app.register_blueprint(webhooks.bp)
app.register_blueprint(staff.bp)
app.register_blueprint(public.bp)
app.register_blueprint(admin_page.bp)
app.register_blueprint(triage_api.bp)
app.register_blueprint(customers_api.bp)
app.register_blueprint(notifications_api.bp)
app.register_blueprint(work_orders_api.bp)
app.register_blueprint(knowledge_api.bp)
app.register_blueprint(qa_api.bp)


@app.lambda_function(name="table_stream")
def table_stream(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """DynamoDB stream of the table → effects (timers, outbox)."""
    return jobs.table_stream(event)


@app.lambda_function(name="clock_events")
def clock_events(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS kefu-clock-events (fed by SNS from the state machines and the sweep) → escalation."""
    return jobs.clock_events(event)


@app.on_sns_message(topic="kefu-inbound-email", name="inbound_email")
def inbound_email(event: SNSEvent) -> dict[str, Any]:
    """SNS kefu-inbound-email (an SES receipt rule) → threaded, deduplicated email intake."""
    return email_handlers.inbound_email(event.to_dict())


@app.lambda_function(name="outbox_sender")
def outbox_sender(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """SQS kefu-outbox → the channel's sender; failures retried, then dead-lettered and marked failed."""
    return jobs.outbox_sender(event)


@app.schedule(Rate(5, unit=Rate.MINUTES), name="reconcile_clocks")
def reconcile_clocks(event: Any) -> dict[str, Any]:
    """Every 5 minutes: fire clocks whose deadline passed without their execution."""
    return jobs.reconcile_clocks()


@app.schedule(Rate(5, unit=Rate.MINUTES), name="send_surveys")
def send_surveys(event: Any) -> dict[str, Any]:
    """Every 5 minutes: satisfaction surveys whose KEFU_SURVEY_DELAY after resolution has passed go out."""
    return get_container().surveys.send_due()


@app.schedule(Rate(1, unit=Rate.DAYS), name="qa_sample")
def qa_sample(event: Any) -> dict[str, Any]:
    """Daily: at least 10 % of yesterday's resolved tickets sampled for QA review (每日抽检≥10%)."""
    return get_container().qa.sample_yesterday()


@app.schedule(Rate(1, unit=Rate.DAYS), name="archive")
def archive(event: Any) -> dict[str, Any]:
    """Daily: tickets resolved 30 days ago and still resolved, copied whole to the archive bucket (≥ 3 years)."""
    return get_container().archive.run()


@app.schedule(Rate(1, unit=Rate.DAYS), name="recompute_tiers")
def recompute_tiers(event: Any) -> dict[str, Any]:
    """Daily: every spender's tier from trailing-12-month spend (top 10% VIP); open tickets re-prioritised."""
    return get_container().tiers.recompute()
