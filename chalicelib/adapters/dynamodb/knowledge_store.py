"""DynamoDB items and queries for the knowledge base (articles + revisions) and the bot's sessions."""
from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from pynamodb.attributes import (
    JSONAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
    VersionAttribute,
)
from pynamodb.connection import Connection
from pynamodb.exceptions import PutError, TransactWriteError
from pynamodb.transactions import TransactWrite

from ...domain.errors import ConflictError, ValidationError
from ...domain.knowledge import Article, BotSession, Turn
from .models import KefuItem, ListIndex

KB_LIST = "KB"  # gsi_list partition of every article


def article_pk(article_id: str) -> str:
    return f"KB#{article_id}"


class ArticleItem(KefuItem, discriminator="kb_article"):
    """A knowledge-base article (pk KB#{id}, sk ARTICLE), listed through gsi_list (list_pk KB, newest change first)."""

    article_id = UnicodeAttribute()
    title = UnicodeAttribute()
    body = UnicodeAttribute()
    questions = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    tags = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    category = UnicodeAttribute()
    channels = ListAttribute(of=UnicodeAttribute, null=True)  # type: ignore[var-annotated]
    status = UnicodeAttribute()
    created_at = UnicodeAttribute()
    created_by = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    updated_by = UnicodeAttribute()
    version = VersionAttribute()
    list_pk = UnicodeAttribute(null=True)
    list_sk = UnicodeAttribute(null=True)
    by_list = ListIndex()


class ArticleRevisionItem(KefuItem, discriminator="kb_revision"):
    """The audit trail of an article (pk KB#{id}, sk REV#{version:06d}): who changed what, and the result."""

    article_id = UnicodeAttribute()
    revision = NumberAttribute()
    action = UnicodeAttribute()
    at = UnicodeAttribute()
    by = UnicodeAttribute()
    snapshot = JSONAttribute()


class BotSessionItem(KefuItem, discriminator="bot_session"):
    """A customer's conversation with the bot (pk BOTSESSION#{id}, sk SESSION); expires by TTL."""

    turns = JSONAttribute(null=True)
    ticket_id = UnicodeAttribute(null=True)
    public_token = UnicodeAttribute(null=True)
    version = VersionAttribute()
    expires_at = TTLAttribute(null=True)


def _article(item: ArticleItem) -> Article:
    return Article(
        id=item.article_id,
        title=item.title,
        body=item.body,
        questions=[str(v) for v in (item.questions or [])],
        tags=[str(v) for v in (item.tags or [])],
        category=item.category,
        channels=[str(v) for v in (item.channels or [])],
        status=item.status,
        version=int(item.version) if item.version is not None else None,
        created_at=item.created_at,
        created_by=item.created_by,
        updated_at=item.updated_at,
        updated_by=item.updated_by,
    )


def _item(article: Article) -> ArticleItem:
    item = ArticleItem(
        pk=article_pk(article.id),
        sk="ARTICLE",
        article_id=article.id,
        title=article.title,
        body=article.body,
        questions=list(article.questions) or None,
        tags=list(article.tags) or None,
        category=article.category,
        channels=list(article.channels) or None,
        status=article.status,
        created_at=article.created_at,
        created_by=article.created_by,
        updated_at=article.updated_at,
        updated_by=article.updated_by,
        list_pk=KB_LIST,
        list_sk=f"{article.updated_at}#{article.id}",
    )
    if article.version is not None:
        item.version = article.version
    return item


def encode_cursor(last_key: dict[str, Any] | None) -> str | None:
    if not last_key:
        return None
    raw = json.dumps(last_key, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValidationError("cursor is not one this API issued") from exc
    if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
        raise ValidationError("cursor is not one this API issued")
    return value


class DynamoKnowledgeStore:
    """Articles, their revisions and bot sessions over the single table: GetItem, Query and (Transact)Write only."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    # --- articles -------------------------------------------------------------------------------
    def get(self, article_id: str) -> Article | None:
        try:
            return _article(ArticleItem.get(article_pk(article_id), "ARTICLE", consistent_read=True))
        except ArticleItem.DoesNotExist:
            return None

    def history(self, article_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The newest revisions first: {revision, action, at, by}."""
        query = ArticleRevisionItem.query(
            article_pk(article_id), ArticleRevisionItem.sk.startswith("REV#"), scan_index_forward=False, limit=limit
        )
        return [
            {"revision": int(r.revision), "action": r.action, "at": r.at, "by": r.by}
            for r in query
            if isinstance(r, ArticleRevisionItem)
        ]

    def put(self, article: Article, action: str) -> Article:
        """Writes the article and its revision in one transaction; `article.version` must be the one loaded
        (None to create). A lost race or an existing id raises ConflictError."""
        item = _item(article)
        revision = (article.version or 0) + 1
        try:
            with TransactWrite(connection=self._connection) as tx:
                tx.save(item, condition=ArticleItem.pk.does_not_exist() if article.version is None else None)
                tx.save(
                    ArticleRevisionItem(
                        pk=article_pk(article.id),
                        sk=f"REV#{revision:06d}",
                        article_id=article.id,
                        revision=revision,
                        action=action,
                        at=article.updated_at,
                        by=article.updated_by,
                        snapshot={k: v for k, v in article.to_json().items() if k != "version"},
                    ),
                    condition=ArticleRevisionItem.pk.does_not_exist(),
                )
        except TransactWriteError as exc:
            if article.version is None:
                raise ConflictError(f"an article with id {article.id!r} already exists", code="exists") from exc
            raise ConflictError(
                f"article {article.id} was changed by someone else; reload it and apply your change again",
                code="stale_version",
            ) from exc
        article.version = int(item.version) if item.version is not None else revision
        return article

    def list_page(self, statuses: Iterable[str], limit: int, cursor: str | None) -> tuple[list[Article], str | None]:
        """One page of articles in the given statuses, most recently changed first."""
        wanted = list(statuses)
        query = ArticleItem.by_list.query(
            KB_LIST,
            filter_condition=ArticleItem.status.is_in(*wanted),
            scan_index_forward=False,
            limit=limit,
            last_evaluated_key=decode_cursor(cursor),
            page_size=limit,
        )
        items = [_article(i) for i in query if isinstance(i, ArticleItem)]
        return items, encode_cursor(query.last_evaluated_key) if len(items) >= limit else None

    def all(self, statuses: Iterable[str], cap: int = 5000) -> list[Article]:
        """Every article in the given statuses: one Query of gsi_list (paged through by PynamoDB)."""
        wanted = list(statuses)
        query = ArticleItem.by_list.query(KB_LIST, filter_condition=ArticleItem.status.is_in(*wanted), limit=cap)
        return [_article(i) for i in query if isinstance(i, ArticleItem)]

    # --- bot sessions ---------------------------------------------------------------------------
    def get_session(self, session_id: str) -> BotSession | None:
        try:
            item = BotSessionItem.get(f"BOTSESSION#{session_id}", "SESSION", consistent_read=True)
        except BotSessionItem.DoesNotExist:
            return None
        return BotSession(
            id=session_id,
            turns=[Turn.from_json(t) for t in (item.turns or [])],
            ticket_id=item.ticket_id or "",
            public_token=item.public_token or "",
            version=int(item.version) if item.version is not None else None,
        )

    def save_session(self, session: BotSession, expires: datetime) -> None:
        """Conditional on the version loaded: a concurrent turn in the same session raises ConflictError."""
        item = BotSessionItem(
            pk=f"BOTSESSION#{session.id}",
            sk="SESSION",
            turns=[t.to_json() for t in session.turns],
            ticket_id=session.ticket_id or None,
            public_token=session.public_token or None,
            expires_at=expires,
        )
        if session.version is not None:
            item.version = session.version
        try:
            item.save()
        except PutError as exc:
            if exc.cause_response_code == "ConditionalCheckFailedException":
                raise ConflictError("the bot session changed meanwhile; ask again", code="session_busy") from exc
            raise
        session.version = int(item.version) if item.version is not None else None
