"""Seeds the local stack: the demo staff directory and a few customers and tickets, through the real services."""

from __future__ import annotations

from datetime import UTC, datetime

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.services.tickets import Actor
from chalicelib.wiring import Container

from .demo import DEMO_STAFF

DEMO_REQUESTS = (
    (
        "APP",
        "app",
        "demo-app-1",
        CustomerRef(external_id="u1001", name="张三", phone="+8613800138000"),
        "我的订单 8812 三天了还没有发货,请帮忙查一下",
    ),
    (
        "MINIPROGRAM",
        "miniprogram",
        "demo-mp-1",
        CustomerRef(external_id="mp-2002", name="李四"),
        "请问会员积分怎么兑换优惠券?",
    ),
    (
        "STORE",
        "store",
        "demo-store-1",
        CustomerRef(external_id="walkin-3003", name="王五", phone="+8613900139000"),
        "在门店买的空气净化器不工作了,想申请维修",
    ),
    ("DOUYIN", "douyin", "demo-douyin-1", CustomerRef(external_id="dy-4004", name="赵六"), "客服态度太差了,我要投诉!"),
)


def seed(container: Container) -> list[str]:
    """Idempotent: staff are upserted; demo requests are deduplicated by their event ids."""
    for member in DEMO_STAFF:
        container.staff.put(member)
    ids = []
    for channel, source, event_id, customer, text in DEMO_REQUESTS:
        result = container.intake.receive(
            InboundMessage(
                channel=channel,
                source=source,
                dedupe_key=f"{source}:{event_id}",
                customer=customer,
                text=text,
                received_at=datetime.now(UTC),
            )
        )
        ids.append(result.ticket_id)
    supervisor = Actor("supervisor1", ("supervisor",))
    first = container.actions.get(ids[0])
    if first.status == "new":
        container.actions.assign(ids[0], supervisor, "agent1")
        container.actions.ack(ids[0], Actor("agent1", ("agent",)))
        container.actions.reply(ids[0], Actor("agent1", ("agent",)), "您好,已为您查询,订单今天下午发出。")
    return ids
