"""Knowledge base: articles, BM25 retrieval with a calibrated confidence, and the bot's hand-off rules."""
from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .errors import ValidationError
from .ticket import CATEGORIES, CHANNEL_CODE
from .triage.classifier import is_negated, normalise, tokenise

STATUSES = ("draft", "published", "archived")
EDITABLE_STATUSES = ("draft", "published")
ARTICLE_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{2,63}\Z")
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}\Z")
MAX_TITLE, MAX_BODY, MAX_QUESTION, MAX_QUESTIONS, MAX_TAGS = 200, 10_000, 500, 30, 20

# BM25 parameters and field weights (a BM25F-style weighted term frequency).
K1, B = 1.2, 0.75
FIELD_WEIGHTS = {"title": 3.0, "questions": 2.0, "tags": 2.0, "body": 1.0}
DEFAULT_THRESHOLD = 0.45
# How much the gap to the runner-up matters: confidence = coverage × (1 - MARGIN_WEIGHT × (1 - margin)).
MARGIN_WEIGHT = 0.4
# A question word no article uses counts this share of its (maximal) IDF against the coverage.
UNSEEN_WEIGHT = 0.5
UNANSWERED_LIMIT = 2  # the session's 2nd unanswered question goes to a human

# Words that carry no topic: question words, pronouns, particles, politeness. Filtered from queries and articles.
STOP_WORDS = frozenset(
    {
        "的", "了", "吗", "呢", "吧", "啊", "呀", "么", "嘛", "哦", "是", "在", "我", "你", "您", "他", "她", "它",
        "我们", "你们", "您们", "他们", "我的", "你的", "贵", "请问", "请", "问", "问下", "问一下", "一下", "想",
        "想问", "想要", "要", "能", "能不能", "可以", "可不可以", "可否", "是否", "怎么", "怎么办", "怎样", "如何",
        "什么", "哪里", "哪儿", "在哪", "在哪里", "哪个", "多少", "多久", "几", "有", "有没有", "没有", "和", "与",
        "或", "及", "把", "被", "给", "让", "就", "都", "也", "还", "又", "会", "这", "那", "这个", "那个", "一个",
        "个", "吗?", "谢谢", "你好", "您好", "麻烦", "帮", "帮我", "帮忙", "下", "上", "到", "去", "来", "对",
        "需要", "应该", "为什么", "如果", "已经", "现在", "时候", "什么时候", "自己", "一直", "还是", "但是",
        "了吗", "是不是", "啥", "咋", "怎么样", "不", "没", "哪", "东西", "还没", "一些", "这样", "那样", "时",
        # English (after the classifier's stemming)
        "can", "how", "what", "when", "where", "why", "which", "who", "will", "would", "could", "should", "please",
        "there", "get", "need", "want", "know", "tell", "about", "any", "some", "hi", "hello", "thank", "thanks",
        "if", "not", "no", "yes", "up", "out", "into", "then", "than", "just", "also", "still", "does", "doe",
    }
)

# Customer-service synonyms: a question word also searches for these (the words articles are written in).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "包裹": ("快递",), "快件": ("快递",), "发出": ("发货",), "发出来": ("发货",), "寄出": ("发货",), "没发": ("发货",),
    "到货": ("物流",), "送到": ("配送",), "退掉": ("退货",), "退回": ("退货",), "退钱": ("退款",), "退款": ("退货",),
    "扣钱": ("扣款",), "扣了": ("扣款",), "两次": ("重复",), "付钱": ("支付",), "付不了": ("支付失败",),
    "关门": ("营业时间",), "开门": ("营业时间",), "几点": ("营业时间",), "店": ("门店",), "装": ("安装",),
    "来装": ("安装",), "登不上": ("登录",), "登陆": ("登录",), "上不去": ("登录",), "修": ("维修",),
    "坏了": ("维修", "保修"), "报销": ("发票",), "抵扣": ("优惠券",), "券": ("优惠券",),
    "package": ("parcel",), "arrive": ("delivery",), "arrived": ("delivery",), "shipped": ("ship",),
    "money": ("refund",), "shop": ("store",), "sign": ("log",), "signin": ("login",), "voucher": ("coupon",),
}

_HUMAN_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"转人工", r"人工客服", r"人工服务", r"人工坐席", r"人工座席", r"(?:找|要|接|呼叫|转接|联系)人工",
        r"真人", r"(?:找|要|叫)(?:个|一个)?客服", r"客服在吗", r"^\s*人工\s*[!!。.]*\s*$",
        r"\bhumans?\b", r"\bagents?\b", r"\breal person\b", r"\b(?:a )?representative\b", r"\boperator\b",
        r"\b(?:talk|speak|chat) (?:to|with) (?:someone|somebody|a person|staff)\b",
    )
)
_HUMAN_NEGATED = re.compile(r"(?:不用|不需要|不需|不要|不|无需|不必|没必要|别|不想|不找)\s*(?:再|去)?\s*\Z")

_UNHELPFUL_PATTERNS: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p)
    for p in (
        r"没用", r"没解决", r"没有解决", r"不是这个", r"答非所问", r"还是不行", r"还是没", r"看不懂", r"不是我问的",
        r"\bnot helpful\b", r"\b(?:didn'?t|doesn'?t|does not|did not) help\b", r"\bnot what i asked\b",
        r"\bstill (?:not|no|doesn'?t|don'?t|can'?t)\b",
    )
)


def _text(value: object, name: str, limit: int, *, required: bool = True) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"'{name}' must be a string")
    text = value.strip()
    if required and not text:
        raise ValidationError(f"'{name}' is required")
    if len(text) > limit:
        raise ValidationError(f"'{name}' is longer than {limit} characters")
    return text


def _strings(value: object, name: str, limit: int, item_limit: int = 200) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"'{name}' must be a list of strings")
    items = list(dict.fromkeys(v.strip() for v in value if v.strip()))
    if len(items) > limit:
        raise ValidationError(f"'{name}' may hold at most {limit} entries")
    if any(len(v) > item_limit for v in items):
        raise ValidationError(f"each of '{name}' must be at most {item_limit} characters")
    return items


@dataclass
class Article:
    """A knowledge-base article: one answer, the ways customers ask for it, and who changed it last."""

    id: str
    title: str
    body: str
    questions: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    category: str = "consultation"
    channels: list[str] = field(default_factory=list)  # empty: every channel
    status: str = "draft"
    version: int | None = None  # optimistic lock, owned by the store
    created_at: str = ""
    created_by: str = ""
    updated_at: str = ""
    updated_by: str = ""

    def serves(self, channel: str) -> bool:
        return not self.channels or channel in self.channels

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "body": self.body,
            "questions": list(self.questions),
            "tags": list(self.tags),
            "category": self.category,
            "channels": list(self.channels),
            "status": self.status,
            "version": self.version,
            "created_at": self.created_at,
            "created_by": self.created_by,
            "updated_at": self.updated_at,
            "updated_by": self.updated_by,
        }


EDITABLE_FIELDS = ("title", "body", "questions", "tags", "category", "channels", "status")


def apply_changes(article: Article, body: Mapping[str, Any]) -> Article:
    """A copy of `article` with the editable fields `body` names, each validated; unknown fields are refused."""
    unknown = set(body) - set(EDITABLE_FIELDS) - {"id", "version"}
    if unknown:
        raise ValidationError(f"unknown field(s): {', '.join(sorted(unknown))}")
    changed = replace(article)
    if "title" in body:
        changed.title = _text(body["title"], "title", MAX_TITLE)
    if "body" in body:
        changed.body = _text(body["body"], "body", MAX_BODY)
    if "questions" in body:
        changed.questions = _strings(body["questions"], "questions", MAX_QUESTIONS, MAX_QUESTION)
    if "tags" in body:
        changed.tags = _strings(body["tags"], "tags", MAX_TAGS, 50)
    if "category" in body:
        category = _text(body["category"], "category", 32)
        if category not in CATEGORIES:
            raise ValidationError(f"'category' must be one of {', '.join(CATEGORIES)}")
        changed.category = category
    if "channels" in body:
        channels = [c.upper() for c in _strings(body["channels"], "channels", 30, 20)]
        if not all(CHANNEL_CODE.match(c) for c in channels):
            raise ValidationError("'channels' must be channel codes such as WEBCHAT, APP, WECHAT")
        changed.channels = channels
    if "status" in body:
        status = _text(body["status"], "status", 20)
        if status not in EDITABLE_STATUSES:
            raise ValidationError("'status' must be draft or published (DELETE archives an article)")
        changed.status = status
    return changed


def new_article(article_id: str, body: Mapping[str, Any]) -> Article:
    """An article from a create request: title and body are required, the rest defaults."""
    if not ARTICLE_ID.match(article_id):
        raise ValidationError("'id' must be 3-64 characters of a-z, 0-9, '-' and '_'")
    if "title" not in body or "body" not in body:
        raise ValidationError("'title' and 'body' are required")
    return apply_changes(Article(id=article_id, title="", body=""), body)


# --- tokens ---------------------------------------------------------------------------------------


def _surface(token: str) -> str:
    return token.split(":", 1)[1] if ":" in token else token


def terms(text: str) -> list[str]:
    """Index terms: the classifier's jieba words, Chinese bigrams and English stems, minus stop words."""
    if not text.strip():
        return []
    return [t for t in tokenise(text) if _surface(t) not in STOP_WORDS and _surface(t).strip()]


def expand(query_terms: Sequence[str]) -> list[str]:
    """The query's terms plus the terms of their synonyms (SYNONYMS), without repeats."""
    extra = []
    for term in query_terms:
        prefix, _, surface = term.partition(":")
        for synonym in SYNONYMS.get(surface, ()):
            extra.extend(terms(synonym) if prefix == "w" or prefix == "e" else [])
    return list(dict.fromkeys([*query_terms, *extra]))


def _is_word(token: str) -> bool:
    return not token.startswith("b:")


def question_hash(question: str) -> str:
    """A stable digest of a question (normalised, whitespace-free): retries of one question share it."""
    norm = re.sub(r"\s+", "", normalise(question))
    return hashlib.sha256(norm.encode()).hexdigest()[:20]


def wants_human(text: str) -> bool:
    """True when the customer asks for a person (转人工, 人工客服, "human", "agent"), not negated (不用转人工)."""
    norm = normalise(text)
    for pattern in _HUMAN_PATTERNS:
        for match in pattern.finditer(norm):
            if not is_negated(norm, match.start()) and not _HUMAN_NEGATED.search(norm[: match.start()]):
                return True
    return False


def says_unhelpful(text: str) -> bool:
    """True when the customer says the previous answer did not help (没用, 没解决, "didn't help")."""
    norm = normalise(text)
    return any(p.search(norm) for p in _UNHELPFUL_PATTERNS)


# --- the index ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Doc:
    article: Article
    tf: dict[str, float]  # field-weighted term frequency
    length: float
    chars: frozenset[str]  # every Chinese character of the article (covers single-character words)


@dataclass(frozen=True)
class Match:
    """A ranked article: its BM25 score, the share of the question it covers and the confidence (0..1)."""

    article: Article
    score: float
    coverage: float
    confidence: float


class KnowledgeIndex:
    """BM25 over title, question variants, tags and body of a set of articles (built once, queried many times)."""

    def __init__(self, articles: Iterable[Article]) -> None:
        docs = []
        for article in articles:
            tf: dict[str, float] = {}
            fields = {
                "title": article.title,
                "questions": "\n".join(article.questions),
                "tags": " ".join(article.tags),
                "body": article.body,
            }
            for name, text in fields.items():
                for term in terms(text):
                    tf[term] = tf.get(term, 0.0) + FIELD_WEIGHTS[name]
            chars = frozenset(ch for text in fields.values() for ch in normalise(text) if "\u3400" <= ch <= "\u9fff")
            docs.append(_Doc(article, tf, float(sum(tf.values())), chars))
        self.docs: tuple[_Doc, ...] = tuple(docs)
        self.df: Counter[str] = Counter(term for doc in self.docs for term in doc.tf)
        self.avg_length = sum(d.length for d in self.docs) / len(self.docs) if self.docs else 1.0

    def __len__(self) -> int:
        return len(self.docs)

    def idf(self, term: str) -> float:
        n, df = len(self.docs), self.df.get(term, 0)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def _score(self, doc: _Doc, query: Sequence[str]) -> float:
        score = 0.0
        norm = K1 * (1.0 - B + B * doc.length / (self.avg_length or 1.0))
        for term in query:
            tf = doc.tf.get(term, 0.0)
            if tf:
                score += self.idf(term) * tf * (K1 + 1.0) / (tf + norm)
        return score

    def _covered(self, doc: _Doc, word: str) -> float:
        surface = _surface(word)
        if word in doc.tf or any(all(t in doc.tf for t in terms(syn)) for syn in SYNONYMS.get(surface, ())):
            return 1.0
        if not word.startswith("w:"):
            return 0.0
        if len(surface) == 1:
            return 1.0 if surface in doc.chars else 0.0
        bigrams = [f"b:{surface[i : i + 2]}" for i in range(len(surface) - 1)]
        return sum(1.0 for b in bigrams if b in doc.tf) / len(bigrams)

    def _weight(self, word: str) -> float:
        weight = self.idf(word) * (UNSEEN_WEIGHT if self.df.get(word, 0) == 0 else 1.0)
        return weight * (0.5 if len(_surface(word)) == 1 else 1.0)

    def coverage(self, doc: _Doc, words: Sequence[str]) -> float:
        """IDF-weighted share of the question's words the article contains (or a synonym of, or all bigrams of)."""
        weights = {w: self._weight(w) for w in words}
        total = sum(weights.values())
        return sum(weights[w] * self._covered(doc, w) for w in words) / total if total else 0.0

    def search(self, question: str, *, channel: str = "", limit: int = 3) -> list[Match]:
        """The best articles for a question, best first, each with its calibrated confidence (docs/KNOWLEDGE.md)."""
        query = list(dict.fromkeys(terms(question)))
        words = [t for t in query if _is_word(t)]
        if not query or not self.docs:
            return []
        expanded = expand(query)
        scored = sorted(
            ((self._score(d, expanded), d) for d in self.docs if not channel or d.article.serves(channel)),
            key=lambda pair: (-pair[0], pair[1].article.id),
        )
        scored = [(s, d) for s, d in scored if s > 0]
        matches = []
        for rank, (score, doc) in enumerate(scored[:limit]):
            runner_up = scored[rank + 1][0] if rank + 1 < len(scored) else 0.0
            margin = 1.0 - runner_up / score
            cover = self.coverage(doc, words)
            confidence = cover * (1.0 - MARGIN_WEIGHT * (1.0 - margin))
            matches.append(Match(doc.article, round(score, 4), round(cover, 4), round(min(1.0, confidence), 3)))
        return matches


# --- the bot's decision ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Turn:
    """One question in a bot session and what the bot did with it."""

    question_hash: str
    question: str
    at: str
    outcome: str  # answered | handoff
    article_id: str = ""
    confidence: float = 0.0
    reason: str = ""
    unanswered: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "question_hash": self.question_hash,
            "question": self.question,
            "at": self.at,
            "outcome": self.outcome,
            "article_id": self.article_id,
            "confidence": self.confidence,
            "reason": self.reason,
            "unanswered": self.unanswered,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Turn:
        return cls(
            question_hash=str(data.get("question_hash", "")),
            question=str(data.get("question", "")),
            at=str(data.get("at", "")),
            outcome=str(data.get("outcome", "")),
            article_id=str(data.get("article_id", "")),
            confidence=float(data.get("confidence", 0.0)),
            reason=str(data.get("reason", "")),
            unanswered=bool(data.get("unanswered", False)),
        )


@dataclass
class BotSession:
    """A customer's conversation with the bot: its turns, and the ticket once handed to a human."""

    id: str
    turns: list[Turn] = field(default_factory=list)
    ticket_id: str = ""
    public_token: str = ""
    version: int | None = None

    @property
    def unanswered(self) -> int:
        return sum(1 for t in self.turns if t.unanswered)

    def turn_for(self, qhash: str) -> Turn | None:
        return next((t for t in self.turns if t.question_hash == qhash), None)


@dataclass(frozen=True)
class Decision:
    """What the bot does with a question: answer with `match`, or hand off for `reason`."""

    handoff: bool
    reason: str
    match: Match | None
    unanswered: bool


def decide(session: BotSession, question: str, matches: Sequence[Match], threshold: float) -> Decision:
    """Hand-off rules, in order: asked for a human; already with a human; below the threshold; the session's
    2nd unanswered question (re-asked for an article already given, or "that did not help"). Else answer."""
    best = matches[0] if matches else None
    repeated = best is not None and any(t.article_id == best.article.id for t in session.turns)
    unanswered = repeated or (bool(session.turns) and says_unhelpful(question))
    if wants_human(question):
        return Decision(True, "asked_for_human", best, unanswered)
    if session.ticket_id:
        return Decision(True, "already_handed_off", best, unanswered)
    if best is None or best.confidence < threshold:
        return Decision(True, "low_confidence", best, True)
    if unanswered and session.unanswered + 1 >= UNANSWERED_LIMIT:
        return Decision(True, "unresolved", best, True)
    return Decision(False, "", best, unanswered)
