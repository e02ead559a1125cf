"""Email channel: SES receipt notifications in, MIME parsing and threading, replies out via SES."""
from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email import message_from_bytes
from email.header import Header, decode_header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.policy import SMTP
from email.utils import format_datetime, getaddresses, parseaddr, parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.channels.http import SendError
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.messages import Attachment, CustomerRef, InboundMessage

# ---------------------------------------------------------------------------------------------
# SES receipt-rule notifications
# ---------------------------------------------------------------------------------------------

# The `encoding` of an SNS action as it appears in the notification ("UTF8" / "BASE64"); the rule
# configuration spells them "UTF-8" / "Base64", so both spellings are accepted.
_ENCODINGS = {"UTF8": "UTF8", "UTF-8": "UTF8", "BASE64": "BASE64"}


@dataclass(frozen=True)
class SesNotification:
    """A `Received` notification published by an SES receipt rule (SNS action or S3 action).

    For an SNS action the mail itself travels in the top-level `content` field, encoded as the
    action's `encoding` says (UTF8 or BASE64): `raw_mime` holds its bytes. For an S3 action the
    notification carries only `bucket_name`/`object_key`; fetch the object to get the mail.
    """

    message_id: str  # SES's id for the mail (also the S3 object key under the rule's prefix)
    action_type: str  # "SNS" | "S3"
    timestamp: str = ""
    source: str = ""  # envelope MAIL FROM
    destination: tuple[str, ...] = ()  # To + Cc from the headers
    recipients: tuple[str, ...] = ()  # envelope RCPT TO matched by the rule
    topic_arn: str = ""
    encoding: str = ""  # "UTF8" | "BASE64" for SNS actions
    raw_mime: bytes | None = None
    bucket_name: str = ""
    object_key: str = ""
    spam_verdict: str = ""
    virus_verdict: str = ""
    spf_verdict: str = ""
    dkim_verdict: str = ""
    dmarc_verdict: str = ""
    notification_type: str = "Received"

    @property
    def is_spam_or_virus(self) -> bool:
        """True when SES flagged the mail as spam or as carrying a virus."""
        return self.spam_verdict == "FAIL" or self.virus_verdict == "FAIL"


def _obj(parent: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = parent.get(key)
    if not isinstance(value, Mapping):
        raise ValidationError(f"SES notification: {where}.{key} must be an object")
    return value


def _str(parent: Mapping[str, Any], key: str, *, required: bool = False, where: str = "") -> str:
    value = parent.get(key)
    if value is None:
        if required:
            raise ValidationError(f"SES notification: {where}{key} is required")
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"SES notification: {where}{key} must be a string")
    if required and not value:
        raise ValidationError(f"SES notification: {where}{key} must not be empty")
    return value


def _str_tuple(parent: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = parent.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"SES notification: {key} must be a list of strings")
    return tuple(value)


def _verdict(receipt: Mapping[str, Any], key: str) -> str:
    value = receipt.get(key)
    if value is None:
        return ""
    if not isinstance(value, Mapping) or not isinstance(value.get("status", ""), str):
        raise ValidationError(f"SES notification: receipt.{key} must be an object with a status")
    return str(value.get("status", ""))


def parse_ses_notification(sns_message: str | Mapping[str, Any]) -> SesNotification:
    """Parse the JSON an SES receipt rule publishes to SNS (the SNS `Message`).

    Accepts the `Message` string, its decoded object, or a whole SNS envelope
    (`{"Type": "Notification", "Message": "..."}`). Only `notificationType` "Received" with an SNS
    or S3 action is accepted; anything else raises ValidationError.
    """
    data: Any = sns_message
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValidationError(f"SES notification is not JSON: {exc}") from exc
    if isinstance(data, Mapping) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        return parse_ses_notification(data["Message"])
    if not isinstance(data, Mapping):
        raise ValidationError("SES notification must be a JSON object")
    ntype = _str(data, "notificationType", required=True)
    if ntype != "Received":
        raise ValidationError(f"SES notification: notificationType {ntype!r} is not 'Received'")
    mail = _obj(data, "mail", "notification")
    receipt = _obj(data, "receipt", "notification")
    action = _obj(receipt, "action", "receipt")
    message_id = _str(mail, "messageId", required=True, where="mail.")
    action_type = _str(action, "type", required=True, where="receipt.action.")
    common: dict[str, Any] = {
        "message_id": message_id,
        "action_type": action_type,
        "timestamp": _str(mail, "timestamp"),
        "source": _str(mail, "source"),
        "destination": _str_tuple(mail, "destination"),
        "recipients": _str_tuple(receipt, "recipients"),
        "topic_arn": _str(action, "topicArn"),
        "spam_verdict": _verdict(receipt, "spamVerdict"),
        "virus_verdict": _verdict(receipt, "virusVerdict"),
        "spf_verdict": _verdict(receipt, "spfVerdict"),
        "dkim_verdict": _verdict(receipt, "dkimVerdict"),
        "dmarc_verdict": _verdict(receipt, "dmarcVerdict"),
    }
    if action_type == "S3":
        return SesNotification(
            bucket_name=_str(action, "bucketName", required=True, where="receipt.action."),
            object_key=_str(action, "objectKey", required=True, where="receipt.action."),
            **common,
        )
    if action_type != "SNS":
        raise ValidationError(f"SES notification: action type {action_type!r} carries no mail (need SNS or S3)")
    declared = _str(action, "encoding") or "UTF8"  # the documented example omits it: UTF-8 is the default
    encoding = _ENCODINGS.get(declared.upper())
    if encoding is None:
        raise ValidationError(f"SES notification: unknown SNS action encoding {declared!r}")
    content = _str(data, "content", required=True, where="")
    if encoding == "BASE64":
        try:
            raw = base64.b64decode("".join(content.split()), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValidationError(f"SES notification: content is not valid base64: {exc}") from exc
    else:
        try:
            raw = content.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates from a \uD800-style JSON escape
            raw = content.encode("utf-8", errors="replace")
    return SesNotification(encoding=encoding, raw_mime=raw, **common)


# ---------------------------------------------------------------------------------------------
# Charsets and headers
# ---------------------------------------------------------------------------------------------

# Real mail labels GBK (and GB18030) text as gb2312; gb18030 is a superset of both, so decode with it.
_CHARSET_ALIASES = {
    **dict.fromkeys(
        ("gb2312", "gbk", "gb_2312-80", "gb_2312", "x-gbk", "cp936", "ms936", "euc-cn", "x-euc-cn", "csgb2312",
         "chinese", "gb18030", "gb-18030"),
        "gb18030",
    ),
    **dict.fromkeys(("big5", "x-big5", "cn-big5", "csbig5", "big5-hkscs"), "big5hkscs"),
    **dict.fromkeys(("utf8", "utf-8", "x-utf-8"), "utf-8"),
}
_UNKNOWN_CHARSETS = {"", "unknown-8bit", "x-unknown", "unknown", "default", "8bit"}
_GUESS_ORDER = ("utf-8", "gb18030")


def _codec(charset: str | None) -> str | None:
    name = (charset or "").strip().strip("\"'").lower()
    if name in _UNKNOWN_CHARSETS:
        return None
    return _CHARSET_ALIASES.get(name, name)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode text bytes labelled `charset`; guess utf-8/gb18030 if unlabelled; never raise."""
    codec = _codec(charset)
    candidates: list[str] = []
    if codec is not None:
        candidates.append(codec)
    candidates.extend(c for c in _GUESS_ORDER if c not in candidates)
    for cand in candidates:
        try:
            return data.decode(cand)
        except (UnicodeDecodeError, LookupError):
            continue
    try:
        return data.decode(codec or "utf-8", errors="replace")
    except LookupError:
        return data.decode("utf-8", errors="replace")


def decode_rfc2047(value: str | Header | None) -> str:
    """Decode RFC 2047 encoded-words (`=?GB2312?B?…?=`, `=?utf-8?Q?…?=`) and raw 8-bit header text."""
    if value is None:
        return ""
    try:
        parts = decode_header(value)
    except Exception:  # malformed encoded-words: keep the text as it came
        return str(value)
    out: list[str] = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            out.append(chunk)
        else:
            out.append(decode_bytes(chunk, charset))
    return "".join(out)


def _header_text(msg: Message, name: str) -> str:
    """A header's raw text (encoded-words intact); 8-bit header bytes decoded best-effort."""
    value = msg.get(name)
    if value is None:
        return ""
    if isinstance(value, Header):  # compat32 hands back raw 8-bit values as Header(unknown-8bit)
        return decode_rfc2047(value)
    return str(value)


def _header_all(msg: Message, name: str) -> list[str]:
    out: list[str] = []
    for value in msg.get_all(name) or []:
        out.append(decode_rfc2047(value) if isinstance(value, Header) else str(value))
    return out


_MSGID_TOKEN = re.compile(r"<([^<>\s]+)>")


def normalize_message_id(value: str) -> str:
    """`<AbC.1@Mail.Example.COM>` → `AbC.1@mail.example.com`: brackets and spaces off, domain lower-cased."""
    text = value.strip()
    match = _MSGID_TOKEN.search(text)
    text = match.group(1) if match else text.strip("<> \t\r\n")
    if "@" in text:
        local, _, domain = text.rpartition("@")
        text = f"{local}@{domain.lower()}"
    return text


def _message_ids(value: str) -> list[str]:
    """All message ids in a References / In-Reply-To value, in order (bare tokens if no brackets)."""
    tokens = _MSGID_TOKEN.findall(value)
    if not tokens:
        tokens = [t for t in value.split() if "@" in t]
    out: list[str] = []
    for token in tokens:
        mid = normalize_message_id(token)
        if mid and mid not in out:
            out.append(mid)
    return out


def normalize_email(address: str) -> str:
    """`"Zhang San" <Zhang.San+vip@Example.COM> ` → `zhang.san+vip@example.com` (+tags are kept)."""
    _, addr = parseaddr(address.strip())
    return (addr or address).strip().strip("<>").strip().lower()


def _addresses(msg: Message, name: str) -> list[tuple[str, str]]:
    """(decoded display name, normalised address) for every address in the named headers."""
    out: list[tuple[str, str]] = []
    for display, addr in getaddresses(_header_all(msg, name)):
        if not addr or "@" not in addr:
            continue
        out.append((decode_rfc2047(display).strip(), normalize_email(addr)))
    return out


# ---------------------------------------------------------------------------------------------
# HTML to text
# ---------------------------------------------------------------------------------------------

_BLOCK_TAGS = {
    "p", "div", "br", "li", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote",
    "pre", "hr", "section", "article", "header", "footer", "dl", "dt", "dd",
}
_SKIP_TAGS = {"script", "style", "head", "title", "template", "noscript"}


class _HtmlToText(HTMLParser):
    """Text of an HTML body: script/style dropped, block tags as line breaks, blockquotes as `> `."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = [""]
        self.skip = 0
        self.quote = 0
        self.pre = 0

    def _newline(self) -> None:
        self.lines.append("")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag == "br":
            self._newline()
        elif tag in ("td", "th"):
            if self.lines[-1].strip() and not self.lines[-1].endswith(" "):
                self.lines[-1] += " "
        elif tag in _BLOCK_TAGS:
            if self.lines[-1].strip():
                self._newline()
            if tag == "blockquote":
                self.quote += 1
            elif tag == "pre":
                self.pre += 1
            elif tag == "li":
                self.lines[-1] += "- "

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("br", "hr", "p", "div"):
            self._newline()

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS and tag != "br":
            if tag == "blockquote":
                self.quote = max(0, self.quote - 1)
            elif tag == "pre":
                self.pre = max(0, self.pre - 1)
            self._newline()

    def handle_data(self, data: str) -> None:
        if self.skip:
            return
        text = data.replace("\xa0", " ")
        chunks = text.split("\n") if self.pre else [re.sub(r"\s+", " ", text)]
        for i, chunk in enumerate(chunks):
            if i:
                self._newline()
            if not self.lines[-1].strip():
                chunk = chunk.lstrip()
                if not chunk:
                    continue
                self.lines[-1] = "> " * self.quote + self.lines[-1].lstrip()
            self.lines[-1] += chunk

    def text(self) -> str:
        lines = [line.rstrip() for line in self.lines]
        return _squeeze_blank_lines(lines)


def _squeeze_blank_lines(lines: list[str]) -> str:
    out: list[str] = []
    for line in lines:
        if not line.strip() and (not out or not out[-1].strip()):
            continue
        out.append(line)
    return "\n".join(out).strip()


def html_to_text(html: str) -> str:
    """Plain text of an HTML mail body (stdlib html.parser; never raises on bad markup)."""
    parser = _HtmlToText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:  # html.parser is lenient; this is a last resort
        return re.sub(r"<[^>]*>", " ", html).strip()
    return parser.text()


# ---------------------------------------------------------------------------------------------
# Quoted history
# ---------------------------------------------------------------------------------------------

_ATTRIBUTION = [
    re.compile(r"^\s*On\b.{0,300}\bwrote\s*:\s*$", re.IGNORECASE),
    re.compile(r"^.{0,300}(写道|寫道)\s*[:：]\s*$"),
    re.compile(r"^\s*-{2,}\s*(Original Message|Forwarded message)\s*-{2,}\s*$", re.IGNORECASE),
    re.compile(r"^\s*-{2,}\s*(原始邮件|原始郵件|转发的邮件|轉寄的郵件)\s*-{2,}\s*$"),
    re.compile(r"^\s*Begin forwarded message\s*:\s*$", re.IGNORECASE),
]
_HEADER_LABEL = re.compile(
    r"^\s*\*?(From|Sent|Date|To|Cc|Subject|发件人|發件人|寄件者|发送时间|發送時間|日期|时间|時間|收件人|抄送|主题|主題|"
    r"發信人|寄件日期|主旨)\*?\s*[:：]",
    re.IGNORECASE,
)
_FROM_LABEL = re.compile(r"^\s*\*?(From|发件人|發件人|寄件者|發信人)\*?\s*[:：]", re.IGNORECASE)
_SEPARATOR = re.compile(r"^\s*(_{8,}|-{8,})\s*$")


def _header_block_at(lines: list[str], i: int) -> bool:
    """True if line i starts an Outlook/Foxmail-style quoted header block (From:/发件人: + more labels)."""
    if not _FROM_LABEL.match(lines[i]):
        return False
    labels = sum(1 for line in lines[i + 1 : i + 6] if _HEADER_LABEL.match(line))
    return labels >= 2


def strip_quoted(text: str) -> str:
    """The new part of a reply: cut at the quoted history and drop `>`-quoted lines.

    The history starts at an attribution line ("On … wrote:", "在 … 写道：", "… 于 … 写道："), an
    "-----Original Message-----" / "原始邮件" separator, or an Outlook-style header block
    ("From:/Sent:/To:/Subject:", "发件人:/发送时间:/收件人:/主题:") optionally after a "_____" rule.
    """
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    cut = len(lines)
    for i, line in enumerate(lines):
        joined = line + " " + lines[i + 1] if i + 1 < len(lines) else line
        if any(p.match(line) for p in _ATTRIBUTION):
            cut = i
            break
        # "On Mon, … Zhang San <zhang@\nexample.com> wrote:" wrapped over two lines
        if i + 1 < len(lines) and line.strip().lower().startswith("on ") and _ATTRIBUTION[0].match(joined):
            cut = i
            break
        if _header_block_at(lines, i):
            cut = i
            if i > 0 and _SEPARATOR.match(lines[i - 1]):
                cut = i - 1
            break
    kept = [line.rstrip() for line in lines[:cut] if not line.lstrip().startswith(">")]
    return _squeeze_blank_lines(kept)


# ---------------------------------------------------------------------------------------------
# Auto-replies and bounces
# ---------------------------------------------------------------------------------------------

_AUTO_SUBJECT = re.compile(
    r"^\s*(自动回复|自動回覆|自动答复|自動答覆|Automatic reply|Auto[- ]?reply|Auto[- ]?response|AutoReply|"
    r"Out of (the )?Office|Auto\s*:|Undeliverable|Undelivered Mail|Delivery Status Notification|"
    r"Mail delivery failed|退信|系统退信|休假)",
    re.IGNORECASE,
)
_DAEMON_LOCALPARTS = {"mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster"}
_AUTO_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
_SUPPRESS_VALUES = {"all", "oof", "autoreply"}


def _auto_reply_reason(msg: Message, subject: str, from_address: str) -> str:
    if msg.get_content_type() == "multipart/report":
        param = msg.get_param("report-type")
        report = (param if isinstance(param, str) else "").strip().lower()
        if report == "delivery-status":  # RFC 3464 DSN
            return "bounce"
        if report == "disposition-notification":  # RFC 8098 read receipt
            return "read-receipt"
    if from_address.split("@")[0] in _DAEMON_LOCALPARTS:
        return "mailer-daemon"
    return_path = _header_text(msg, "Return-Path").strip()
    if msg.get("Return-Path") is not None and return_path in ("<>", ""):
        return "null-return-path"
    auto_submitted = _header_text(msg, "Auto-Submitted").split(";")[0].strip().lower()
    if auto_submitted and auto_submitted != "no":  # RFC 3834 §5: anything but "no" is automatic
        return f"auto-submitted:{auto_submitted}"
    for name in ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Autorespond-Type"):
        if msg.get(name) is not None:
            return name.lower()
    precedence = _header_text(msg, "Precedence").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        return f"precedence:{precedence}"
    if _AUTO_SUBJECT.match(subject):
        return "subject"
    return ""


# ---------------------------------------------------------------------------------------------
# MIME parsing
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmailAttachment:
    """One attachment (or inline part such as an embedded image) of an inbound mail."""

    filename: str
    content_type: str
    content: bytes
    content_id: str = ""  # without <>; what `cid:` URLs in the HTML body point at
    inline: bool = False


@dataclass(frozen=True)
class ParsedEmail:
    """The parts of an inbound mail kefu uses. Message ids are normalised (see normalize_message_id)."""

    message_id: str
    raw_sha256: str
    from_address: str
    from_name: str = ""
    subject: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    reply_to: list[str] = field(default_factory=list)
    date: datetime | None = None
    text: str = ""
    html: str = ""
    text_without_quote: str = ""
    attachments: list[EmailAttachment] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)  # lower-case name → first value, decoded
    is_auto_reply: bool = False
    auto_reason: str = ""  # auto-submitted:<kw> | bounce | read-receipt | mailer-daemon | … | subject
    suppress_auto_response: bool = False  # do not send an automatic acknowledgement to this mail
    bounced_recipients: list[str] = field(default_factory=list)  # RFC 3464 failed Final-Recipients

    @property
    def thread_refs(self) -> tuple[str, ...]:
        """In-Reply-To then References, de-duplicated, in order: what threading looks up."""
        out: list[str] = []
        for mid in (self.in_reply_to, *self.references):
            if mid and mid not in out:
                out.append(mid)
        return tuple(out)


def _iter_leaves(part: Message) -> Iterator[Message]:
    """Leaf parts in order; message/* parts are yielded whole (a forwarded or bounced mail's
    body must not become this mail's body)."""
    if part.get_content_maintype() == "message" or not part.is_multipart():
        yield part
        return
    payload = part.get_payload()
    if isinstance(payload, list):
        for sub in payload:
            if isinstance(sub, Message):
                yield from _iter_leaves(sub)


def _part_bytes(part: Message) -> bytes:
    if part.get_content_maintype() == "message":
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        if isinstance(inner, Message):
            try:
                return inner.as_bytes()
            except Exception:  # odd encodings in a forwarded mail
                return inner.as_string().encode("utf-8", errors="replace")
        return str(payload).encode("utf-8", errors="replace")
    try:
        data = part.get_payload(decode=True)
    except Exception:  # defective transfer encoding
        data = None
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", errors="replace") if isinstance(raw, str) else b""


def _part_text(part: Message) -> str:
    return decode_bytes(_part_bytes(part), part.get_content_charset())


def _safe_filename(name: str) -> str:
    name = name.replace("\\", "/").split("/")[-1].strip().replace("\x00", "")
    return name if name not in ("", ".", "..") else ""


_RAW_NAME = re.compile(r"""\b(?:file)?name\s*=\s*"?([^";\r\n]+)""", re.IGNORECASE)


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()  # RFC 2231 (filename*=UTF-8''…) and Content-Type name=
    except Exception:  # broken RFC 2231 continuations
        name = None
    if not name:
        return ""
    if "=?" in name:  # RFC 2047 inside a parameter: not standard, but what most CN mailers send
        name = decode_rfc2047(name)
    elif "\ufffd" in name:  # raw 8-bit bytes in the parameter: re-read them from the header itself
        for header in ("Content-Disposition", "Content-Type"):
            match = _RAW_NAME.search(_header_text(part, header))
            if match:
                name = match.group(1).strip()
                break
    return _safe_filename(name)


def _delivery_status_failures(part: Message) -> list[str]:
    """Failed Final-Recipients of a message/delivery-status part (RFC 3464 §2.3)."""
    out: list[str] = []
    payload = part.get_payload()
    blocks = payload if isinstance(payload, list) else []
    for block in blocks[1:]:  # the first block is per-message, the rest per-recipient
        if not isinstance(block, Message):
            continue
        action = str(block.get("Action", "")).strip().lower()
        recipient = str(block.get("Final-Recipient", "") or block.get("Original-Recipient", ""))
        addr = recipient.split(";", 1)[-1].strip()
        if action == "failed" and addr:
            out.append(normalize_email(addr))
    return out


def parse_mime(raw: bytes) -> ParsedEmail:
    """Parse a raw RFC 5322 / MIME mail into a ParsedEmail. Never raises on bad encodings."""
    msg = message_from_bytes(raw)
    raw_sha256 = hashlib.sha256(raw).hexdigest()

    headers: dict[str, str] = {}
    for name in msg:
        key = name.lower()
        if key not in headers:
            headers[key] = decode_rfc2047(msg.get(name)).strip()

    subject = re.sub(r"\s*[\r\n]+\s*", " ", decode_rfc2047(msg.get("Subject"))).strip()
    senders = _addresses(msg, "From") or _addresses(msg, "Sender")
    from_name, from_address = senders[0] if senders else ("", "")
    in_reply_ids = _message_ids(_header_text(msg, "In-Reply-To"))
    references = _message_ids(" ".join(_header_all(msg, "References")))
    date: datetime | None = None
    date_text = _header_text(msg, "Date")
    if date_text:
        try:
            date = parsedate_to_datetime(date_text)
        except (TypeError, ValueError, IndexError):
            date = None

    plain: list[str] = []
    html: list[str] = []
    attachments: list[EmailAttachment] = []
    bounced: list[str] = []
    for part in _iter_leaves(msg):
        ctype = part.get_content_type()
        disposition = part.get_content_disposition()
        filename = _filename(part)
        if ctype == "message/delivery-status":
            bounced.extend(_delivery_status_failures(part))
            continue
        if ctype in ("text/plain", "text/html") and not filename and disposition != "attachment":
            (plain if ctype == "text/plain" else html).append(_part_text(part))
            continue
        content_id = str(part.get("Content-ID", "")).strip().strip("<>").strip()  # exact: cid: URLs match it
        if not filename:
            filename = f"attachment-{len(attachments) + 1}" + (".eml" if ctype == "message/rfc822" else "")
        attachments.append(
            EmailAttachment(
                filename=filename,
                content_type=ctype,
                content=_part_bytes(part),
                content_id=content_id,
                inline=disposition == "inline" or (bool(content_id) and disposition != "attachment"),
            )
        )

    html_text = "\n".join(h for h in html if h.strip())
    text = "\n".join(p.strip("\r\n") for p in plain if p.strip())
    text = text.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text and html_text:
        text = html_to_text(html_text)

    reason = _auto_reply_reason(msg, subject, from_address)
    suppress_values = {v.strip().lower() for v in _header_text(msg, "X-Auto-Response-Suppress").split(",")}
    suppress = bool(reason) or bool(suppress_values & _SUPPRESS_VALUES) or msg.get("List-Id") is not None

    return ParsedEmail(
        message_id=normalize_message_id(_header_text(msg, "Message-ID")) if msg.get("Message-ID") else "",
        raw_sha256=raw_sha256,
        from_address=from_address,
        from_name=from_name,
        subject=subject,
        in_reply_to=in_reply_ids[0] if in_reply_ids else "",
        references=references,
        to=[addr for _, addr in _addresses(msg, "To")],
        cc=[addr for _, addr in _addresses(msg, "Cc")],
        reply_to=[addr for _, addr in _addresses(msg, "Reply-To")],
        date=date,
        text=text,
        html=html_text,
        text_without_quote=strip_quoted(text),
        attachments=attachments,
        headers=headers,
        is_auto_reply=bool(reason),
        auto_reason=reason,
        suppress_auto_response=suppress,
        bounced_recipients=bounced,
    )


# ---------------------------------------------------------------------------------------------
# Into kefu
# ---------------------------------------------------------------------------------------------

# Same shape as chalicelib.domain.ticket.TICKET_ID (CHANNEL-YYYYMMDD-NNNNNN), in square brackets.
_SUBJECT_TICKET = re.compile(r"\[([A-Z][A-Z0-9_]{1,19}-\d{8}-\d{6})\]")


def ticket_id_from_subject(subject: str) -> str:
    """The kefu ticket id tagged in a subject (`Re: [WECHAT-20261123-000042] 退款`), or "".

    This is a hint for agents and search only. Threading is by Message-ID / In-Reply-To /
    References: a subject tag is trivially forged or copied, so a matching subject alone must NOT
    join a mail to a ticket (to_inbound puts it in metadata, not in InboundMessage.ticket_hint).
    """
    match = _SUBJECT_TICKET.search(subject or "")
    return match.group(1) if match else ""


def to_inbound(
    parsed: ParsedEmail,
    received_at: datetime,
    attachment_urls: Sequence[tuple[str, str, str]] = (),
) -> InboundMessage:
    """The InboundMessage for a parsed mail; attachment_urls are (url, type, name) of stored parts.

    Automatic mail (auto-replies, bounces, read receipts) becomes kind "event" with event
    "auto_reply" / "bounce", so it never opens or joins a ticket and never triggers an auto-ack
    (RFC 3834 §2); the ticket layer may still log it.
    """
    if not parsed.from_address:
        raise ValidationError("email has no From address")
    dedupe = parsed.message_id or f"sha256:{parsed.raw_sha256}"
    kind, event = "message", ""
    if parsed.is_auto_reply:
        kind = "event"
        event = "bounce" if parsed.auto_reason in ("bounce", "mailer-daemon", "null-return-path") else "auto_reply"
    return InboundMessage(
        channel="EMAIL",
        source="email",
        dedupe_key=f"email:{dedupe}",
        customer=CustomerRef(external_id=parsed.from_address, email=parsed.from_address, name=parsed.from_name),
        text=parsed.text_without_quote or parsed.text,
        received_at=received_at,
        attachments=tuple(Attachment(url=url, type=kind_, name=name) for url, kind_, name in attachment_urls),
        kind=kind,
        event=event,
        subject=parsed.subject,
        thread_refs=parsed.thread_refs,
        metadata={
            "message_id": parsed.message_id,
            "to": list(parsed.to),
            "cc": list(parsed.cc),
            "subject_ticket_id": ticket_id_from_subject(parsed.subject),
            "auto_reply": parsed.is_auto_reply,
            "auto_reason": parsed.auto_reason,
            "suppress_auto_response": parsed.suppress_auto_response,
        },
    )


# ---------------------------------------------------------------------------------------------
# Outbound
# ---------------------------------------------------------------------------------------------

_REPLY_PREFIX = re.compile(
    r"^\s*((Re|RE|re|Aw|AW|Antw|SV|Vs|回复|回覆|答复|答覆)(\s*\[\d+\]|\s*\(\d+\))?\s*[:：]\s*)+", re.IGNORECASE
)


@dataclass(frozen=True)
class OutboundEmail:
    """A ready-to-send MIME mail and the (bare) Message-ID it carries."""

    raw: bytes
    message_id: str
    subject: str = ""
    in_reply_to: str = ""
    references: tuple[str, ...] = ()


def reply_subject(subject: str, ticket_id: str, *, is_reply: bool) -> str:
    """`Re: Re: [T] 退款` → `Re: [T] 退款`: one reply prefix, the ticket tag exactly once."""
    base = subject.strip()
    tag = f"[{ticket_id}]" if ticket_id else ""
    for _ in range(3):  # "[T] Re: x", "Re: [T] Re: x" … peel alternately
        base = _REPLY_PREFIX.sub("", base).strip()
        if tag and base.startswith(tag):
            base = base[len(tag) :].strip()
    if tag:
        base = base.replace(tag, "").strip()
        base = re.sub(r"\s{2,}", " ", base)
    parts = [p for p in ("Re:" if is_reply else "", tag, base) if p]
    return " ".join(parts)


def build_reply(
    *,
    from_address: str,
    from_name: str,
    to_address: str,
    subject: str,
    text: str,
    ticket_id: str,
    in_reply_to: str,
    references: Sequence[str],
    domain: str,
    now: datetime,
    html: str | None = None,
    auto: bool = False,
) -> OutboundEmail:
    """A UTF-8 MIME reply threaded per RFC 5322 §3.6.4.

    References = the parent's References followed by the parent's Message-ID (`in_reply_to`).
    The Message-ID is `<random@domain>`. `auto=True` marks a system notice with
    `Auto-Submitted: auto-replied` (or `auto-generated` when it answers no mail, RFC 3834 §5)
    and `X-Auto-Response-Suppress: All`; human replies carry neither.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValidationError("build_reply needs a timezone-aware `now`")
    if not domain or "@" in domain or any(c.isspace() for c in domain):
        raise ValidationError(f"invalid Message-ID domain {domain!r}")
    sender = normalize_email(from_address)
    recipient = normalize_email(to_address)
    if "@" not in sender or "@" not in recipient:
        raise ValidationError("build_reply needs valid from and to addresses")

    parent = normalize_message_id(in_reply_to) if in_reply_to else ""
    refs: list[str] = []
    for mid in (*(normalize_message_id(r) for r in references if r and r.strip()), parent):
        if mid and mid not in refs:
            refs.append(mid)
    if parent and refs[-1] != parent:  # the parent must be last even if it appeared earlier
        refs.remove(parent)
        refs.append(parent)

    message_id = f"{now.strftime('%Y%m%d%H%M%S')}.{secrets.token_hex(12)}@{domain.lower()}"
    final_subject = reply_subject(subject, ticket_id, is_reply=bool(parent or refs))

    msg = EmailMessage(policy=SMTP)
    msg["From"] = Address(display_name=from_name, addr_spec=sender) if from_name else sender
    msg["To"] = recipient
    msg["Subject"] = final_subject
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{message_id}>"
    if parent:
        msg["In-Reply-To"] = f"<{parent}>"
    if refs:
        msg["References"] = " ".join(f"<{r}>" for r in refs)
    if auto:
        msg["Auto-Submitted"] = "auto-replied" if parent else "auto-generated"
        msg["X-Auto-Response-Suppress"] = "All"
    body = text.replace("\r\n", "\n")
    msg.set_content(body, charset="utf-8", cte="quoted-printable" if body.isascii() else "base64")
    if html is not None:
        msg.add_alternative(html, subtype="html", charset="utf-8", cte="base64")
    return OutboundEmail(
        raw=msg.as_bytes(),
        message_id=message_id,
        subject=final_subject,
        in_reply_to=parent,
        references=tuple(refs),
    )


_RETRYABLE_CODES = {
    "Throttling",
    "ThrottlingException",
    "TooManyRequestsException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "InternalFailure",
    "InternalError",
    "RequestTimeout",
    "RequestTimeoutException",
}
_PERMANENT_CODES = {
    "MessageRejected",
    "MailFromDomainNotVerified",
    "MailFromDomainNotVerifiedException",
    "ConfigurationSetDoesNotExist",
    "ConfigurationSetDoesNotExistException",
    "ConfigurationSetSendingPausedException",
    "AccountSendingPausedException",
    "InvalidParameterValue",
    "AccessDenied",
    "AccessDeniedException",
}


class SesSender:
    """Sends OutboundEmail through SES `send_raw_email`; the client is built lazily by the factory."""

    def __init__(self, ses_client_factory: Callable[[], Any]) -> None:
        self._factory = ses_client_factory
        self._client: Any = None

    def _ses(self) -> Any:
        if self._client is None:
            self._client = self._factory()
        return self._client

    def send(self, email: OutboundEmail, *, source: str, destinations: Sequence[str]) -> str:
        """Send and return SES's MessageId. Raises SendError(retryable=…) on failure."""
        if not destinations:
            raise ValidationError("send needs at least one destination")
        try:
            response = self._ses().send_raw_email(
                Source=source,
                Destinations=list(destinations),
                RawMessage={"Data": email.raw},
            )
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            text = f"SES send_raw_email failed: {code}: {error.get('Message', '')}"
            if code in _RETRYABLE_CODES:
                raise SendError(text, retryable=True) from exc
            if code in _PERMANENT_CODES:
                raise SendError(text, retryable=False) from exc
            raise SendError(text, retryable=status >= 500 or status == 429) from exc
        except BotoCoreError as exc:  # connection / timeout / endpoint problems
            raise SendError(f"SES send_raw_email failed: {exc}", retryable=True) from exc
        return str(response["MessageId"])
