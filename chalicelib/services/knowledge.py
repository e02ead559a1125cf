"""Knowledge base use cases: article editing with audit, the FAQ bot (answer or hand-off) and the demo FAQ."""
from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from ..domain.errors import ConflictError, NotFound, ValidationError
from ..domain.knowledge import (
    DEFAULT_THRESHOLD,
    SESSION_ID,
    STATUSES,
    Article,
    BotSession,
    Decision,
    KnowledgeIndex,
    Turn,
    apply_changes,
    decide,
    new_article,
    question_hash,
)
from ..domain.messages import CustomerRef, InboundMessage
from ..domain.ticket import CHANNEL_CODE, Ticket, iso
from ..ports import Clock, TicketRepository
from .intake import IntakeService
from .tickets import change_ticket

if TYPE_CHECKING:
    from ..wiring import Container

MAX_QUESTION = 500
CACHE_SECONDS = 60
SESSION_RETENTION = timedelta(days=1)
LIVE_STATUSES = ("draft", "published")
BOT_ACTOR = "bot"
ATTEMPTS = 3


class KnowledgeStore(Protocol):
    """Persistence of articles (with their revisions) and bot sessions."""

    def get(self, article_id: str) -> Article | None: ...

    def history(self, article_id: str, limit: int = 50) -> list[dict[str, Any]]: ...

    def put(self, article: Article, action: str) -> Article: ...

    def list_page(
        self, statuses: Iterable[str], limit: int, cursor: str | None
    ) -> tuple[list[Article], str | None]: ...

    def all(self, statuses: Iterable[str], cap: int = 5000) -> list[Article]: ...

    def get_session(self, session_id: str) -> BotSession | None: ...

    def save_session(self, session: BotSession, expires: datetime) -> None: ...


@dataclass(frozen=True)
class BotQuestion:
    """A validated `POST /public/bot/ask` body."""

    question: str
    channel: str
    customer: CustomerRef
    session_id: str
    new_session: bool


def _string(data: Mapping[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"'{key}' must be a string")
    text = value.strip()
    if len(text) > limit:
        raise ValidationError(f"'{key}' is longer than {limit} characters")
    return text


def parse_question(body: Mapping[str, Any]) -> BotQuestion:
    """`{"question": 1..500 chars, "channel"?, "customer"?: {external_id|phone|email|…}, "session_id"?}`."""
    unknown = set(body) - {"question", "channel", "customer", "session_id"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    question = body.get("question")
    if not isinstance(question, str) or not question.strip():
        raise ValidationError("'question' is required (1 to 500 characters)")
    if len(question.strip()) > MAX_QUESTION:
        raise ValidationError(f"'question' is longer than {MAX_QUESTION} characters")
    channel = (_string(body, "channel", 20) or "WEBCHAT").upper()
    if not CHANNEL_CODE.match(channel):
        raise ValidationError("'channel' must be a channel code such as WEBCHAT, APP, MINIPROGRAM")
    session_id = _string(body, "session_id", 64)
    if session_id and not SESSION_ID.match(session_id):
        raise ValidationError("'session_id' must be 1-64 characters of letters, digits, '-' and '_'")
    raw = body.get("customer") or {}
    if not isinstance(raw, dict):
        raise ValidationError("'customer' must be an object")
    unknown = set(raw) - {"external_id", "name", "phone", "email", "union_id", "member_id"}
    if unknown:
        raise ValidationError(f"unknown customer field(s): {', '.join(sorted(unknown))}")
    customer = CustomerRef(
        external_id=_string(raw, "external_id", 200),
        name=_string(raw, "name", 200),
        phone=_string(raw, "phone", 40),
        email=_string(raw, "email", 254).lower(),
        union_id=_string(raw, "union_id", 200),
        member_id=_string(raw, "member_id", 200),
    )
    new_session = not session_id
    return BotQuestion(
        question=question.strip(),
        channel=channel,
        customer=customer,
        session_id=session_id or "s_" + secrets.token_hex(10),
        new_session=new_session,
    )


class KnowledgeService:
    """Edits articles (every change a new version and a revision record) and answers customers' questions."""

    def __init__(
        self,
        store: KnowledgeStore,
        intake: IntakeService,
        tickets: TicketRepository,
        clock: Clock,
        *,
        public_base_url: str = "",
        threshold: float = DEFAULT_THRESHOLD,
        cache_seconds: int = CACHE_SECONDS,
    ) -> None:
        if not 0.0 <= threshold <= 1.0:
            raise ValidationError("the bot's confidence threshold must be between 0 and 1")
        self.store = store
        self.intake = intake
        self.tickets = tickets
        self.clock = clock
        self.public_base_url = public_base_url.rstrip("/")
        self.threshold = threshold
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._index: KnowledgeIndex | None = None
        self._loaded_at: datetime | None = None

    # --- articles -------------------------------------------------------------------------------
    def get(self, article_id: str) -> Article:
        article = self.store.get(article_id)
        if article is None:
            raise NotFound(f"no article {article_id}")
        return article

    def history(self, article_id: str) -> list[dict[str, Any]]:
        return self.store.history(article_id)

    def list(
        self, *, q: str = "", status: str = "", category: str = "", limit: int = 50, cursor: str | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of articles (most recently changed first), or with `q` the best matches (one page, scored)."""
        if status and status not in STATUSES:
            raise ValidationError(f"'status' must be one of {', '.join(STATUSES)}")
        if not 1 <= limit <= 100:
            raise ValidationError("limit must be between 1 and 100")
        statuses = (status,) if status else LIVE_STATUSES
        if q:
            if len(q) > MAX_QUESTION:
                raise ValidationError(f"'q' is longer than {MAX_QUESTION} characters")
            articles = [a for a in self.store.all(statuses) if not category or a.category == category]
            matches = KnowledgeIndex(articles).search(q, limit=limit)
            return [{**m.article.to_json(), "score": m.score, "confidence": m.confidence} for m in matches], None
        items, next_cursor = self.store.list_page(statuses, limit, cursor)
        return [a.to_json() for a in items if not category or a.category == category], next_cursor

    def create(self, body: Mapping[str, Any], actor_id: str) -> Article:
        raw_id = body.get("id")
        if raw_id is not None and not isinstance(raw_id, str):
            raise ValidationError("'id' must be a string")
        article = new_article(raw_id or "kb-" + secrets.token_hex(6), body)
        now = iso(self.clock.now())
        article.created_at = article.updated_at = now
        article.created_by = article.updated_by = actor_id
        self.store.put(article, "created")
        self.invalidate()
        return article

    def update(self, article_id: str, body: Mapping[str, Any], actor_id: str) -> Article:
        version = body.get("version")
        if not isinstance(version, int) or isinstance(version, bool):
            raise ValidationError("'version' (the version you edited) is required, as a whole number")
        if "id" in body and body["id"] != article_id:
            raise ValidationError("'id' cannot be changed")
        current = self.get(article_id)
        _check_version(current, version)
        changed = apply_changes(current, body)
        changed.updated_at, changed.updated_by = iso(self.clock.now()), actor_id
        action = "restored" if current.status == "archived" else "updated"
        self.store.put(changed, action)
        self.invalidate()
        return changed

    def archive(self, article_id: str, actor_id: str, version: int | None = None) -> Article:
        current = self.get(article_id)
        if version is not None:
            _check_version(current, version)
        if current.status == "archived":
            return current
        current.status = "archived"
        current.updated_at, current.updated_by = iso(self.clock.now()), actor_id
        self.store.put(current, "archived")
        self.invalidate()
        return current

    # --- the bot's index ------------------------------------------------------------------------
    def invalidate(self) -> None:
        with self._lock:
            self._index, self._loaded_at = None, None

    def index(self) -> KnowledgeIndex:
        """The published articles, indexed; loaded with one Query and reused for `cache_seconds`."""
        now = self.clock.now()
        with self._lock:
            fresh = self._loaded_at is not None and timedelta(0) <= now - self._loaded_at < timedelta(
                seconds=self.cache_seconds
            )
            if self._index is not None and fresh:
                return self._index
        index = KnowledgeIndex(self.store.all(("published",)))
        with self._lock:
            self._index, self._loaded_at = index, now
        return index

    # --- the bot --------------------------------------------------------------------------------
    def ask(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Answers from the knowledge base, or hands off to a human (a ticket) — see docs/KNOWLEDGE.md."""
        asked = parse_question(body)
        qhash = question_hash(asked.question)
        matches = self.index().search(asked.question, channel=asked.channel, limit=3)
        for _attempt in range(ATTEMPTS):
            session = None if asked.new_session else self.store.get_session(asked.session_id)
            session = session or BotSession(id=asked.session_id)
            earlier = session.turn_for(qhash)
            if earlier is not None and (earlier.outcome == "answered" or session.ticket_id):
                return self._replay(asked, session, earlier)  # a retried request: the same answer, nothing new
            decision = decide(session, asked.question, matches, self.threshold)
            try:
                if decision.handoff:
                    return self._handoff(asked, session, qhash, decision)
                return self._answer(asked, session, qhash, decision)
            except ConflictError:
                continue
        raise ConflictError("this conversation is changing too fast; ask again", code="session_busy")

    def _turn(self, asked: BotQuestion, qhash: str, decision: Decision, outcome: str) -> Turn:
        match = decision.match
        return Turn(
            question_hash=qhash,
            question=asked.question,
            at=iso(self.clock.now()),
            outcome=outcome,
            article_id=match.article.id if match else "",
            confidence=match.confidence if match else 0.0,
            reason=decision.reason,
            unanswered=decision.unanswered,
        )

    def _save(self, session: BotSession) -> None:
        self.store.save_session(session, self.clock.now() + SESSION_RETENTION)

    def _answer(self, asked: BotQuestion, session: BotSession, qhash: str, decision: Decision) -> dict[str, Any]:
        assert decision.match is not None
        session.turns.append(self._turn(asked, qhash, decision, "answered"))
        self._save(session)
        article = decision.match.article
        return {
            "answer": {
                "article_id": article.id,
                "title": article.title,
                "text": article.body,
                "confidence": decision.match.confidence,
            },
            "handoff": None,
            "session_id": session.id,
        }

    def _replay(self, asked: BotQuestion, session: BotSession, turn: Turn) -> dict[str, Any]:
        if turn.outcome == "answered":
            article = self.index().search(asked.question, channel=asked.channel, limit=3)
            hit = next((m.article for m in article if m.article.id == turn.article_id), None) or self.store.get(
                turn.article_id
            )
            if hit is not None:
                return {
                    "answer": {
                        "article_id": hit.id,
                        "title": hit.title,
                        "text": hit.body,
                        "confidence": turn.confidence,
                    },
                    "handoff": None,
                    "session_id": session.id,
                }
        return self._handoff_answer(session, turn.reason or "already_handed_off")

    def _handoff_answer(self, session: BotSession, reason: str) -> dict[str, Any]:
        return {
            "answer": None,
            "handoff": {
                "ticket_id": session.ticket_id,
                "status_url": self._status_url(session.ticket_id, session.public_token),
                "reason": reason,
            },
            "session_id": session.id,
        }

    def _status_url(self, ticket_id: str, token: str) -> str:
        return f"{self.public_base_url}/public/tickets/{ticket_id}?token={token}"

    def _handoff(self, asked: BotQuestion, session: BotSession, qhash: str, decision: Decision) -> dict[str, Any]:
        customer = asked.customer
        if not any((customer.external_id, customer.phone, customer.email, customer.union_id, customer.member_id)):
            customer = CustomerRef(external_id=session.id, name=customer.name)  # identity bot:{session_id}
        result = self.intake.receive(
            InboundMessage(
                channel=asked.channel,
                source="bot",
                dedupe_key=f"bot:{session.id}:{qhash}",
                customer=customer,
                text=asked.question,
                received_at=self.clock.now(),
                subject=asked.question[:80],
                metadata={"bot_session": session.id, "handoff_reason": decision.reason},
            )
        )
        token = result.public_token
        turn = self._turn(asked, qhash, decision, "handoff")
        if not result.duplicate:
            ticket = self._record_attempts(result.ticket_id, session, turn)
            token = token or ticket.public_token
        elif not token:
            found = self.tickets.find(result.ticket_id)
            token = found.public_token if found else ""
        if session.turn_for(qhash) is None:
            session.turns.append(turn)
        session.ticket_id, session.public_token = result.ticket_id, token
        self._save(session)
        return self._handoff_answer(session, decision.reason)

    def _record_attempts(self, ticket_id: str, session: BotSession, turn: Turn) -> Ticket:
        """An internal note listing what the bot tried, and a `bot_handoff` timeline entry."""
        lines = [f"机器人转人工 / bot hand-off — 原因 reason: {turn.reason}; 会话 session: {session.id}"]
        for number, t in enumerate([*session.turns, turn], start=1):
            tried = f"{t.article_id} (置信度 confidence {t.confidence:.2f})" if t.article_id else "无匹配 no match"
            lines.append(f"{number}. 「{t.question}」 → {tried}; {t.outcome}")
        def change(ticket: Ticket) -> None:
            now = self.clock.now()
            note = ticket.add_note("\n".join(lines), now, BOT_ACTOR)
            ticket.record(
                now,
                BOT_ACTOR,
                "bot_handoff",
                reason=turn.reason,
                session_id=session.id,
                note_id=note.id,
                attempts=[{"article_id": t.article_id, "confidence": t.confidence} for t in [*session.turns, turn]],
            )

        return change_ticket(self.tickets, ticket_id, change, ATTEMPTS)


def _check_version(article: Article, version: int) -> None:
    if article.version != version:
        raise ConflictError(
            f"article {article.id} is at version {article.version}, not {version}; reload it and apply your change",
            code="stale_version",
        )


# The demo FAQ seeded by `make run` (local/seed.py); realistic answers for the questions customers ask most.
DEMO_ARTICLES: tuple[dict[str, Any], ...] = (
    {
        "id": "faq-logistics",
        "title": "物流查询:我的订单发货了吗、快递到哪了",
        "questions": [
            "我的快递到哪里了", "订单什么时候发货", "怎么查物流", "物流信息一直不更新", "包裹几天能到",
            "where is my parcel", "track my order", "when will my order ship", "delivery status",
        ],
        "tags": ["物流", "快递", "发货", "配送", "shipping", "delivery"],
        "category": "consultation",
        "body": (
            "下单后一般 48 小时内发货(预售商品以页面说明为准)。发货后可在 APP「我的-订单-查看物流」或小程序订单详情中"
            "查看快递单号和实时物流;也可以把快递单号粘贴到快递公司官网查询。物流信息超过 72 小时未更新,"
            "请提供订单号,我们会联系快递公司核实。"
        ),
    },
    {
        "id": "faq-member-points",
        "title": "会员积分:如何获得、查询和兑换积分",
        "questions": [
            "积分怎么兑换", "会员积分有什么用", "积分什么时候过期", "怎么查积分", "积分可以抵现吗",
            "how do i redeem points", "member points expiry", "how to check my points balance",
        ],
        "tags": ["会员", "积分", "兑换", "membership", "points"],
        "category": "consultation",
        "body": (
            "每消费 1 元累积 1 积分,确认收货后 7 天到账。积分可在「会员中心-积分商城」兑换优惠券或礼品,"
            "100 积分可抵扣 1 元。积分有效期为获得当年及次年的 12 月 31 日,到期自动清零。"
        ),
    },
    {
        "id": "faq-returns",
        "title": "退换货政策:七天无理由退货与十五天换货",
        "questions": [
            "怎么申请退货", "可以退换货吗", "七天无理由退货怎么操作", "退款多久到账", "商品不喜欢能退吗", "换货流程",
            "how do i return an item", "refund policy", "can i exchange a product", "how long does a refund take",
        ],
        "tags": ["退货", "换货", "退款", "售后", "return", "refund", "exchange"],
        "category": "after_sales",
        "body": (
            "签收后 7 天内商品完好、不影响二次销售可申请七天无理由退货;15 天内出现质量问题可申请换货。"
            "在订单详情点击「申请售后」选择退货或换货,审核通过后按提示寄回。退款在仓库签收后 1-3 个工作日"
            "原路退回。质量问题的运费由我们承担。"
        ),
    },
    {
        "id": "faq-warranty",
        "title": "保修政策:整机保修一年,核心部件三年",
        "questions": [
            "保修期多久", "坏了能免费修吗", "过了保修期怎么办", "保修需要发票吗", "怎么申请维修",
            "how long is the warranty", "is repair free under warranty", "warranty period",
        ],
        "tags": ["保修", "维修", "质保", "warranty", "repair"],
        "category": "after_sales",
        "body": (
            "整机自签收之日起保修一年,压缩机、电机等核心部件保修三年。保修期内非人为损坏免费维修,"
            "凭订单号或购买发票即可。超出保修期可付费维修,上门检测费 50 元。申请维修请在 APP「服务-报修」提交。"
        ),
    },
    {
        "id": "faq-invoice",
        "title": "发票:如何开具电子发票和增值税专用发票",
        "questions": [
            "怎么开发票", "发票在哪里下载", "可以开专票吗", "发票抬头写错了怎么办", "电子发票",
            "how do i get an invoice", "can i get a vat invoice", "download invoice",
        ],
        "tags": ["发票", "开票", "专票", "invoice", "vat"],
        "category": "consultation",
        "body": (
            "订单完成后可在「订单详情-申请开票」开具电子普通发票,开票后 24 小时内发送到您的邮箱并可在订单中下载。"
            "企业客户可申请增值税专用发票,需填写公司名称、税号、开户行及账号。抬头有误可在 30 天内申请重开一次。"
        ),
    },
    {
        "id": "faq-installation",
        "title": "安装预约:空调、热水器等大件商品免费安装",
        "questions": [
            "怎么预约安装", "安装要收费吗", "什么时候上门安装", "师傅安装要多久", "改约安装时间",
            "how do i book an installation", "is installation free", "schedule installation",
        ],
        "tags": ["安装", "预约", "上门", "installation"],
        "category": "after_sales",
        "body": (
            "空调、热水器、洗碗机等商品提供免费标准安装。商品签收后在 APP「服务-预约安装」选择上门时间,"
            "师傅会在上门前一天电话确认。需要改约请提前 24 小时在原预约单中修改。"
            "超出标准的辅材(如加长铜管)按价目表收费。"
        ),
    },
    {
        "id": "faq-store-hours",
        "title": "门店营业时间与门店地址查询",
        "questions": [
            "门店几点开门", "门店营业时间", "附近有门店吗", "节假日门店营业吗", "线下店在哪",
            "what are your store opening hours", "store near me", "when does the shop open",
        ],
        "tags": ["门店", "营业时间", "地址", "store", "hours"],
        "category": "consultation",
        "body": (
            "门店营业时间为每天 10:00-22:00,法定节假日正常营业(春节期间以门店公告为准)。"
            "在 APP 或小程序「门店」页可查看离您最近的门店地址、电话和导航。"
        ),
    },
    {
        "id": "faq-change-address",
        "title": "修改收货地址:下单后如何更改地址",
        "questions": [
            "下单后能改地址吗", "收货地址填错了", "怎么修改收货地址", "发货后还能改地址吗",
            "can i change my delivery address", "wrong shipping address", "update address after ordering",
        ],
        "tags": ["地址", "修改地址", "收货", "address"],
        "category": "consultation",
        "body": (
            "订单未发货前,可在「订单详情-修改地址」自行修改,每个订单可修改一次。已发货的订单请联系快递员"
            "或在物流页面申请改派;跨城改派可能产生额外运费。"
        ),
    },
    {
        "id": "faq-payment",
        "title": "支付问题:支付失败、重复扣款和支付方式",
        "questions": [
            "支付失败怎么办", "付款了订单还显示未支付", "重复扣款了", "支持哪些支付方式", "可以分期付款吗",
            "payment failed", "i was charged twice", "what payment methods do you accept",
        ],
        "tags": ["支付", "付款", "扣款", "分期", "payment"],
        "category": "consultation",
        "body": (
            "支持微信支付、支付宝、银联卡和花呗分期。支付失败请检查余额与银行卡限额后重试;已扣款但订单显示未支付,"
            "一般 30 分钟内会自动同步,如重复扣款,多扣的款项会在 1-3 个工作日内原路退回。"
        ),
    },
    {
        "id": "faq-coupons",
        "title": "优惠券:领取、使用规则与有效期",
        "questions": [
            "优惠券怎么用", "优惠券为什么用不了", "在哪里领优惠券", "优惠券过期了还能用吗", "满减券能叠加吗",
            "how do i use a coupon", "coupon not working", "where can i get coupons",
        ],
        "tags": ["优惠券", "满减", "折扣", "coupon", "discount"],
        "category": "consultation",
        "body": (
            "在「我的-优惠券」或活动页领取优惠券,结算时自动选择最优券。每笔订单限用一张店铺券和一张平台券,"
            "不可叠加同类券。券面写明的使用门槛、品类和有效期都满足才可使用,过期优惠券无法恢复。"
        ),
    },
    {
        "id": "faq-account-login",
        "title": "账号登录:忘记密码、收不到验证码、账号被锁定",
        "questions": [
            "登录不了怎么办", "忘记密码", "收不到验证码", "账号被锁定了", "怎么换绑手机号",
            "i can't log in", "forgot my password", "not receiving the verification code",
        ],
        "tags": ["账号", "登录", "密码", "验证码", "login", "password", "account"],
        "category": "consultation",
        "body": (
            "忘记密码可在登录页点击「忘记密码」用手机验证码重置。收不到验证码请确认手机号正确、未拦截短信,"
            "60 秒后可重新获取。连续输错密码 5 次账号会锁定 30 分钟。换绑手机号请在「设置-账号与安全」操作。"
        ),
    },
    {
        "id": "faq-complaints",
        "title": "投诉渠道:如何投诉以及处理时效",
        "questions": [
            "怎么投诉", "投诉电话是多少", "对服务不满意去哪里反馈", "投诉多久有回复",
            "how do i make a complaint", "complaint hotline", "how long does a complaint take",
        ],
        "tags": ["投诉", "反馈", "热线", "complaint"],
        "category": "complaint",
        "body": (
            "您可以拨打 7×24 小时客服热线 400-800-8888,在 APP「我的-客服-投诉建议」提交,或发送邮件至 "
            "support@kefu.example.com。投诉会在 30 分钟内确认受理,一般 48 小时内给出处理结果,"
            "处理全程可在工单链接中查看进度。"
        ),
    },
)


def seed_demo_articles(container: Container) -> list[str]:
    """Idempotent: publishes the demo FAQ (12 articles) unless an article with the same id exists."""
    service = container.knowledge
    created = []
    for data in DEMO_ARTICLES:
        if service.store.get(str(data["id"])) is None:
            try:
                service.create({**data, "status": "published"}, "seed")
                created.append(str(data["id"]))
            except ConflictError:
                continue
    return created
