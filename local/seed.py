"""Seeds the local stack: the demo staff directory and a few customers and tickets, through the real services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from chalicelib.domain.messages import CustomerRef, InboundMessage
from chalicelib.domain.tiers import SpendRecord
from chalicelib.services.knowledge import seed_demo_articles
from chalicelib.services.tickets import Actor
from chalicelib.services.work_orders import seed_demo as seed_work_orders_demo
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
    (
        "WECHAT",
        "wechat",
        "demo-wechat-vip-1",
        CustomerRef(external_id="o-demo-vip-5005", name="钱七"),
        "你们的产品质量太差了,三天都没人管,再不处理我就找媒体曝光!",
    ),
)
# Trailing-12-month spend per demo customer (by request index): the WeChat customer is the top 10% → VIP.
DEMO_SPEND = {0: "1800", 1: "560", 2: "3200", 3: "240", 4: "128000"}
DEMO_ACCOUNT_MANAGER = "manager1"


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
    seed_tiers(container, ids)
    seed_demo_articles(container)  # the demo FAQ the bot answers from (docs/KNOWLEDGE.md)
    seed_work_orders_demo(container.work_orders)  # engineer skills, spare parts, devices (docs/WORK_ORDERS.md)
    supervisor = Actor("supervisor1", ("supervisor",))
    first = container.actions.get(ids[0])
    if first.status == "new":
        container.actions.assign(ids[0], supervisor, "agent1")
        container.actions.ack(ids[0], Actor("agent1", ("agent",)))
        container.actions.reply(ids[0], Actor("agent1", ("agent",)), "您好,已为您查询,订单今天下午发出。")
    return ids


def seed_tiers(container: Container, ticket_ids: list[str]) -> None:
    """Demo spend → the tiers job (the WeChat customer becomes VIP, with an account manager) before triage runs."""
    customers = {index: container.tickets.get(ticket_id).customer_id for index, ticket_id in enumerate(ticket_ids)}
    day = (container.clock.now().astimezone(container.settings.zone) - timedelta(days=30)).date()
    records = [SpendRecord(customers[index], Decimal(amount), day) for index, amount in DEMO_SPEND.items()]
    container.tiers.import_spend(records, Actor("admin1", ("admin",)))
    container.tiers.recompute()
    container.triage_store.set_customer_attribute(customers[4], "account_manager", DEMO_ACCOUNT_MANAGER)
