"""Composition root: builds the services with their adapters, lazily, once per container (Lambda)."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from .config import Settings, get_settings

if TYPE_CHECKING:  # the real imports are inside the properties below: `import app` stays free of boto3/PynamoDB
    from pynamodb.connection import Connection

    from .adapters.aws import AwsClients
    from .adapters.dynamodb.channel_store import DynamoChannelStore, DynamoCustomerLedger
    from .adapters.dynamodb.notifications import DynamoClockMarks, DynamoNotificationStore
    from .adapters.dynamodb.repository import DynamoCustomerRepository, DynamoStaffDirectory, DynamoTicketRepository
    from .adapters.dynamodb.resolutions_store import DynamoResolutionStore
    from .adapters.dynamodb.triage_store import DynamoTriageStore
    from .adapters.s3_attachments import S3AttachmentStore
    from .ports import Clock, Publisher, Queue, Timers
    from .services.archive import ArchiveService
    from .services.channel_events import CallRecordings, ChannelEventService, EmailIntake
    from .services.clocks import ClockSweep, EscalationService
    from .services.customers import CustomerAdmin
    from .services.effects import EffectsDispatcher
    from .services.intake import IntakeService
    from .services.knowledge import KnowledgeService
    from .services.notifications import NotificationService
    from .services.outbox import OutboxService
    from .services.qa import QaService
    from .services.resolutions import ResolutionIndex
    from .services.surveys import SurveyService
    from .services.tickets import TicketActions
    from .services.tiers import TierService
    from .services.triage import ClassifierSource, RuleBook, TriageService
    from .services.work_orders import WorkOrderService


class Container:
    """Everything a handler needs; each piece is made on first use and then reused.

    Each property imports its adapters and services itself, so importing this module (every blueprint does)
    loads neither boto3, botocore nor PynamoDB; the first request that needs them pays for them, once.
    """

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        from .ports import SystemClock

        self.settings = settings
        self.clock: Clock = clock or SystemClock()

    def _connection(self) -> Connection:
        """A fresh low-level PynamoDB connection to the table's region (and local endpoint)."""
        from pynamodb.connection import Connection

        return Connection(region=self.settings.region, host=self.settings.endpoint_url or None)

    @cached_property
    def aws(self) -> AwsClients:
        from .adapters.aws import AwsClients

        settings = self.settings
        return AwsClients(settings.region, settings.endpoint_url, settings.account_id, settings.resource_prefix)

    @cached_property
    def tickets(self) -> DynamoTicketRepository:
        from .adapters.dynamodb.models import bind_models
        from .adapters.dynamodb.repository import DynamoTicketRepository

        bind_models(self.settings.table_name, self.settings.region, self.settings.endpoint_url)
        return DynamoTicketRepository(self._connection())

    @cached_property
    def customers(self) -> DynamoCustomerRepository:
        from .adapters.dynamodb.repository import DynamoCustomerRepository

        self.tickets  # noqa: B018 - binds the models
        return DynamoCustomerRepository()

    @cached_property
    def staff(self) -> DynamoStaffDirectory:
        from .adapters.dynamodb.repository import DynamoStaffDirectory

        self.tickets  # noqa: B018 - binds the models
        return DynamoStaffDirectory()

    @cached_property
    def publisher(self) -> Publisher:
        from .adapters.aws import SnsPublisher

        return SnsPublisher(self.aws)

    @cached_property
    def queue(self) -> Queue:
        from .adapters.aws import SqsQueue

        return SqsQueue(self.aws)

    @cached_property
    def timers(self) -> Timers:
        from .adapters.aws import StepFunctionsTimers

        return StepFunctionsTimers(self.aws, "kefu-clock", policy=self.settings.sla_policy)  # catalogue name

    @cached_property
    def intake(self) -> IntakeService:
        from .services.intake import IntakeService

        return IntakeService(self.tickets, self.customers, self.clock, self.settings.zone)

    @cached_property
    def actions(self) -> TicketActions:
        from .services.tickets import TicketActions

        return TicketActions(self.tickets, self.staff, self.clock, self.settings.sla_policy)

    @cached_property
    def escalation(self) -> EscalationService:
        from .services.clocks import EscalationService

        return EscalationService(self.tickets, self.staff, self.publisher, self.clock, self.settings.sla_policy)

    @cached_property
    def sweep(self) -> ClockSweep:
        from .services.clocks import ClockSweep

        return ClockSweep(self.tickets, self.publisher, self.clock, self.settings.sla_policy, self.clock_marks)

    @cached_property
    def clock_marks(self) -> DynamoClockMarks:
        from .adapters.dynamodb.notifications import DynamoClockMarks

        return DynamoClockMarks(self.aws.client("dynamodb"), self.settings.table_name)

    @cached_property
    def notification_store(self) -> DynamoNotificationStore:
        from .adapters.dynamodb.notifications import DynamoNotificationStore

        self.tickets  # noqa: B018 - binds the models
        return DynamoNotificationStore(self._connection())

    @cached_property
    def notifications(self) -> NotificationService:
        from .services.notifications import NotificationService

        return NotificationService(self.notification_store, self.publisher, self.clock, self.settings.zone)

    @cached_property
    def effects(self) -> EffectsDispatcher:
        from .services.effects import EffectsDispatcher

        return EffectsDispatcher(
            self.timers,
            self.queue,
            event_handlers={
                "created": lambda image: self.triage.on_created(image),
                "routed": lambda image: self.triage.on_routed(image),
                "escalated": lambda image: self.notifications.on_timeline_entry(image),
                "clock_warning": lambda image: self.notifications.on_timeline_entry(image),
                "urgent_alert": lambda image: self.notifications.on_timeline_entry(image),
                "customer_reply": lambda image: self.actions.on_customer_reply(image),
                "resolve": lambda image: (self.resolutions.on_resolved(image), self.surveys.on_resolved(image)),
                "callback_task": lambda image: self.notifications.on_timeline_entry(image),
            },
            kind_handlers={"survey": lambda change: self.surveys.on_answered(change.new, change.old)},
        )

    @cached_property
    def resolution_store(self) -> DynamoResolutionStore:
        from .adapters.dynamodb.resolutions_store import DynamoResolutionStore

        self.tickets  # noqa: B018 - binds the models
        return DynamoResolutionStore()

    @cached_property
    def resolutions(self) -> ResolutionIndex:
        from .services.resolutions import ResolutionIndex

        return ResolutionIndex(self.resolution_store, self.settings.zone)

    @cached_property
    def archive(self) -> ArchiveService:
        from .adapters.s3_archive import S3ArchiveObjects
        from .services.archive import ArchiveService

        return ArchiveService(
            self.tickets,
            self.resolution_store,
            S3ArchiveObjects(self.aws, self.settings.archive_bucket),
            self.clock,
            self.settings.zone,
        )

    @cached_property
    def qa(self) -> QaService:
        from .adapters.dynamodb.qa_store import DynamoQaStore
        from .services.qa import QaService

        self.tickets  # noqa: B018 - binds the models
        return QaService(
            self.tickets, self.resolution_store, DynamoQaStore(), self.staff, self.clock, self.settings.zone
        )

    @cached_property
    def surveys(self) -> SurveyService:
        from .adapters.dynamodb.surveys_store import DynamoSurveyStore
        from .services.surveys import SurveyService

        self.tickets  # noqa: B018 - binds the models
        return SurveyService(
            self.tickets,
            DynamoSurveyStore(),
            self.staff,
            self.clock,
            self.settings.sla_policy,
            self.settings.survey_delay,
            self.settings.public_base_url,
        )

    @cached_property
    def triage_store(self) -> DynamoTriageStore:
        from .adapters.dynamodb.triage_store import DynamoTriageStore

        self.tickets  # noqa: B018 - binds the models
        return DynamoTriageStore()

    @cached_property
    def rulebook(self) -> RuleBook:
        from .services.triage import RuleBook

        return RuleBook(self.triage_store)

    @cached_property
    def classifiers(self) -> ClassifierSource:
        from .services.triage import ClassifierSource

        return ClassifierSource(self.triage_store, self.clock)

    @cached_property
    def triage(self) -> TriageService:
        from .services.triage import TriageService

        return TriageService(
            self.tickets,
            self.customers,
            self.staff,
            self.triage_store,
            self.rulebook,
            self.classifiers,
            self.publisher,
            self.clock,
            self.settings.sla_policy,
            inbox=self.notification_store,
        )

    @cached_property
    def tiers(self) -> TierService:
        from .services.tiers import TierService

        return TierService(self.triage_store, self.tickets, self.triage, self.clock, self.settings.zone)

    # --- channels in and out, and the unified customer (docs/CHANNELS.md) ---------------------
    @cached_property
    def channel_store(self) -> DynamoChannelStore:
        from .adapters.dynamodb.channel_store import DynamoChannelStore

        self.tickets  # noqa: B018 - binds the models
        return DynamoChannelStore()

    @cached_property
    def customer_ledger(self) -> DynamoCustomerLedger:
        from .adapters.dynamodb.channel_store import DynamoCustomerLedger

        self.tickets  # noqa: B018 - binds the models
        return DynamoCustomerLedger()

    @cached_property
    def attachments(self) -> S3AttachmentStore:
        from .adapters.s3_attachments import S3AttachmentStore

        return S3AttachmentStore(self.aws, self.settings.attachments_bucket)

    @cached_property
    def channel_events(self) -> ChannelEventService:
        from .services.channel_events import ChannelEventService

        return ChannelEventService(self.customers, self.customer_ledger, self.channel_store, self.tickets, self.clock)

    @cached_property
    def call_recordings(self) -> CallRecordings:
        from .services.channel_events import CallRecordings

        return CallRecordings(self.tickets, self.channel_store, self.clock)

    @cached_property
    def email_intake(self) -> EmailIntake:
        from .services.channel_events import EmailIntake

        return EmailIntake(
            self.intake, self.channel_events, self.channel_store, self.attachments, self.tickets, self.clock
        )

    @cached_property
    def customer_admin(self) -> CustomerAdmin:
        from .services.customers import CustomerAdmin

        return CustomerAdmin(self.customers, self.customer_ledger, self.tickets, self.clock)

    @cached_property
    def outbox(self) -> OutboxService:
        from .adapters.dynamodb.channel_store import DynamoAccessTokenStore
        from .channels.email import SesSender
        from .channels.generic_sender import GenericCallbackSender
        from .channels.http import UrllibHttpClient
        from .channels.twilio import TwilioSender
        from .channels.wechat import WeChatSender
        from .services.outbox import (
            ContactBook,
            EmailChannelSender,
            OutboxService,
            SmsChannelSender,
            WeChatChannelSender,
        )

        settings, http = self.settings, UrllibHttpClient()
        contacts = ContactBook(self.customers)
        wechat = WeChatSender(
            settings.wechat_app_id,
            settings.wechat_app_secret,
            settings.wechat_api_base,
            http,
            DynamoAccessTokenStore("wechat"),
            self.clock.now,
        )
        sms = SmsChannelSender(
            TwilioSender(
                settings.twilio_account_sid,
                settings.twilio_auth_token,
                settings.twilio_from_number,
                settings.twilio_api_base,
                http,
            ),
            contacts,
        )
        email = EmailChannelSender(
            SesSender(lambda: self.aws.client("ses")),
            self.channel_store,
            contacts,
            settings.ses_sender,
            settings.region,
            self.clock.now,
        )
        self.tickets  # noqa: B018 - binds the models (the token store is one)
        return OutboxService(
            self.tickets,
            {"WECHAT": WeChatChannelSender(wechat, contacts), "SMS": sms, "HOTLINE": sms, "EMAIL": email},
            GenericCallbackSender(settings.webhook_callbacks, settings.webhook_secrets, http),
            callback_sources=settings.webhook_callbacks.keys(),
        )

    @cached_property
    def work_orders(self) -> WorkOrderService:
        """After-sales work orders, devices and spare-part stock (docs/WORK_ORDERS.md)."""
        from .adapters.dynamodb.work_orders_store import DynamoWorkOrderStore
        from .services.work_orders import WorkOrderService

        self.tickets  # noqa: B018 - binds the models
        store = DynamoWorkOrderStore(self._connection())
        return WorkOrderService(store, self.tickets, self.staff, self.publisher, self.clock, self.settings.zone)

    @cached_property
    def knowledge(self) -> KnowledgeService:
        """The knowledge base and the FAQ bot (docs/KNOWLEDGE.md); the published articles cached ~60 s."""
        from .adapters.dynamodb.knowledge_store import DynamoKnowledgeStore
        from .services.knowledge import KnowledgeService

        self.tickets  # noqa: B018 - binds the models
        store = DynamoKnowledgeStore(self._connection())
        threshold = float(getattr(self.settings, "bot_confidence_threshold", 0.45))
        return KnowledgeService(
            store,
            self.intake,
            self.tickets,
            self.clock,
            public_base_url=self.settings.public_base_url,
            threshold=threshold,
        )


_container: Container | None = None


def get_container() -> Container:
    """The process-wide container, built on first use from the environment."""
    global _container
    if _container is None:
        _container = Container(get_settings())
    return _container


def set_container(container: Container | None) -> None:
    """Replaces the process-wide container (tests; the local stack)."""
    global _container
    _container = container
