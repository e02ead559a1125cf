"""Customer identity: resolves what a channel knows about a person to one customer profile."""
from __future__ import annotations

import secrets
from datetime import datetime

from ..domain.messages import CustomerRef
from ..domain.ticket import iso
from ..ports import Customer, CustomerRepository


def identities_of(ref: CustomerRef, source: str) -> list[str]:
    """The identities a reference carries, strongest first (member id, UnionID, channel id, phone, email)."""
    found = []
    if ref.member_id:
        found.append(f"member:{ref.member_id.strip()}")
    if ref.union_id:
        found.append(f"wechat_union:{ref.union_id.strip()}")
    if ref.external_id:
        found.append(f"{source}:{ref.external_id.strip()}")
    if ref.phone:
        found.append(f"phone:{ref.phone.strip()}")
    if ref.email:
        found.append(f"email:{ref.email.strip().lower()}")
    return found


class CustomerService:
    """Finds or creates the customer behind a CustomerRef; new identities join the matched profile."""

    def __init__(self, customers: CustomerRepository) -> None:
        self.customers = customers

    def resolve(self, ref: CustomerRef, source: str, at: datetime) -> str:
        identities = identities_of(ref, source)
        existing = self.customers.find_by_identities(identities)
        if existing:
            self.customers.add_identities(existing, identities)
            return existing
        customer = Customer(
            id="C" + secrets.token_hex(8),
            name=ref.name,
            phone=ref.phone,
            email=ref.email.lower(),
            identities=identities,
            created_at=iso(at),
        )
        self.customers.create(customer)
        # Two first deliveries may race: the identity index decides who owns the person.
        winner = self.customers.find_by_identities(identities)
        return winner or customer.id
