"""Composition root: builds the services with their adapters, lazily, once per container (Lambda)."""
from __future__ import annotations

from functools import cached_property

from pynamodb.connection import Connection

from .adapters.aws import AwsClients, SnsPublisher, SqsQueue, StepFunctionsTimers
from .adapters.dynamodb.models import bind_models
from .adapters.dynamodb.repository import DynamoCustomerRepository, DynamoStaffDirectory, DynamoTicketRepository
from .config import Settings, get_settings
from .ports import Clock, Publisher, Queue, SystemClock, Timers
from .services.clocks import ClockSweep, EscalationService
from .services.effects import EffectsDispatcher
from .services.intake import IntakeService
from .services.tickets import TicketActions


class Container:
    """Everything a handler needs; each piece is made on first use and then reused."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock: Clock = clock or SystemClock()

    @cached_property
    def aws(self) -> AwsClients:
        return AwsClients(self.settings.region, self.settings.endpoint_url, self.settings.account_id)

    @cached_property
    def tickets(self) -> DynamoTicketRepository:
        bind_models(self.settings.table_name, self.settings.region, self.settings.endpoint_url)
        return DynamoTicketRepository(
            Connection(region=self.settings.region, host=self.settings.endpoint_url or None)
        )

    @cached_property
    def customers(self) -> DynamoCustomerRepository:
        self.tickets  # noqa: B018 - binds the models
        return DynamoCustomerRepository()

    @cached_property
    def staff(self) -> DynamoStaffDirectory:
        self.tickets  # noqa: B018 - binds the models
        return DynamoStaffDirectory()

    @cached_property
    def publisher(self) -> Publisher:
        return SnsPublisher(self.aws)

    @cached_property
    def queue(self) -> Queue:
        return SqsQueue(self.aws)

    @cached_property
    def timers(self) -> Timers:
        return StepFunctionsTimers(self.aws, f"{self.settings.resource_prefix}-clock")

    @cached_property
    def intake(self) -> IntakeService:
        return IntakeService(self.tickets, self.customers, self.clock, self.settings.zone)

    @cached_property
    def actions(self) -> TicketActions:
        return TicketActions(self.tickets, self.staff, self.clock, self.settings.sla_policy)

    @cached_property
    def escalation(self) -> EscalationService:
        return EscalationService(self.tickets, self.staff, self.publisher, self.clock, self.settings.sla_policy)

    @cached_property
    def sweep(self) -> ClockSweep:
        return ClockSweep(self.tickets, self.publisher, self.clock)

    @cached_property
    def effects(self) -> EffectsDispatcher:
        return EffectsDispatcher(self.timers, self.queue)


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
