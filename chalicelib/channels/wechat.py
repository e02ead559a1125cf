"""WeChat Official Account (server mode): push signature and AES crypto, XML parsing, customer-service sender."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import re
import struct
import urllib.parse
import xml.parsers.expat
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NoReturn, Protocol

from chalicelib.channels.http import HttpClient, HttpResponse, SendError
from chalicelib.domain.errors import AuthenticationError, ValidationError
from chalicelib.domain.messages import Attachment, CustomerRef, InboundMessage

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.ciphers import Cipher, modes

CHANNEL = "WECHAT"
SOURCE = "wechat"

#: WeChat pads the plaintext with PKCS#7 to a multiple of 32 bytes (the AES key length), not 16.
PKCS7_BLOCK = 32
#: Pushes are a few KiB; anything far beyond that is not WeChat and is refused before parsing.
MAX_XML_BYTES = 1 << 20
#: Access tokens are refreshed this long before WeChat says they expire.
TOKEN_SAFETY_MARGIN = timedelta(minutes=5)
#: errcodes meaning "the access_token is invalid or expired": refresh once and retry.
TOKEN_ERRCODES = frozenset({40001, 40014, 42001})
#: errcodes worth retrying later: -1 system busy, 45009 daily API quota reached, 45011 calls too frequent.
RETRYABLE_ERRCODES = frozenset({-1, 45009, 45011})

_REPLY_TEMPLATE = (
    "<xml>\n"
    "<Encrypt><![CDATA[{encrypt}]]></Encrypt>\n"
    "<MsgSignature><![CDATA[{signature}]]></MsgSignature>\n"
    "<TimeStamp>{timestamp}</TimeStamp>\n"
    "<Nonce><![CDATA[{nonce}]]></Nonce>\n"
    "</xml>"
)
_SAFE_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


# --------------------------------------------------------------------------------------------- signatures


def _sha1_sorted(*parts: str) -> str:
    """SHA1 hex of the parts sorted in byte (dictionary) order and concatenated, as WeChat signs."""
    return hashlib.sha1("".join(sorted(parts)).encode("utf-8")).hexdigest()


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison of two hex signatures (case-insensitive on the given one)."""
    return hmac.compare_digest(expected.encode("ascii"), given.strip().lower().encode("utf-8", "replace"))


def verify_url_signature(token: str, signature: str, timestamp: str, nonce: str) -> bool:
    """Check the `signature` query parameter: SHA1(sort(token, timestamp, nonce)), compared in constant time."""
    if not (token and signature and timestamp and nonce):
        return False
    return _same(_sha1_sorted(token, timestamp, nonce), signature)


# --------------------------------------------------------------------------------------------- AES crypto


class WeChatCrypto:
    """WeChat 消息加解密: AES-256-CBC over random(16) + len(4, big-endian) + msg + AppID, PKCS#7 to 32 bytes.

    key = Base64_Decode(EncodingAESKey + "="), IV = key[:16]; msg_signature = SHA1(sort(token, timestamp,
    nonce, msg_encrypt)). Every failure to decrypt is an AuthenticationError: a payload that does not decrypt
    under our key to our AppID was not produced by WeChat for this account.
    """

    def __init__(self, token: str, encoding_aes_key: str, app_id: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("EncodingAESKey must be 43 characters")
        try:
            key = base64.b64decode(encoding_aes_key + "=", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("EncodingAESKey is not base64") from exc
        if len(key) != 32:
            raise ValueError("EncodingAESKey must decode to 32 bytes")
        if not token or not app_id:
            raise ValueError("token and app_id are required")
        self.token = token
        self.app_id = app_id
        self._key = key
        self._iv = key[:16]

    def _cipher(self) -> Cipher[modes.CBC]:
        # cryptography is imported on the first encrypted message, not with the webhook routes.
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        return Cipher(algorithms.AES(self._key), modes.CBC(self._iv))

    def encrypt(self, xml: str, *, random16: bytes | None = None) -> str:
        """Encrypt `xml` for WeChat; `random16` (tests only) fixes the 16 leading random bytes."""
        rand = os.urandom(16) if random16 is None else random16
        if len(rand) != 16:
            raise ValueError("random16 must be 16 bytes")
        body = xml.encode("utf-8")
        plain = rand + struct.pack(">I", len(body)) + body + self.app_id.encode("utf-8")
        pad = PKCS7_BLOCK - len(plain) % PKCS7_BLOCK
        plain += bytes([pad]) * pad
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode("ascii")

    def decrypt(self, encrypted_b64: str) -> str:
        """Decrypt a base64 `Encrypt` value; refuse bad base64, length, padding, framing or a foreign AppID."""
        try:
            data = base64.b64decode(encrypted_b64.strip(), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise AuthenticationError("wechat: ciphertext is not base64") from exc
        if not data or len(data) % 16:
            raise AuthenticationError("wechat: ciphertext length is not a multiple of the AES block")
        dec = self._cipher().decryptor()
        plain = dec.update(data) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= PKCS7_BLOCK or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
            raise AuthenticationError("wechat: bad padding")
        content = plain[16:-pad]
        if len(content) < 4:
            raise AuthenticationError("wechat: decrypted payload too short")
        (length,) = struct.unpack(">I", content[:4])
        if length > len(content) - 4:
            raise AuthenticationError("wechat: bad message length")
        msg, from_id = content[4 : 4 + length], content[4 + length :]
        if not hmac.compare_digest(from_id, self.app_id.encode("utf-8")):
            raise AuthenticationError("wechat: AppID mismatch")
        try:
            return msg.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AuthenticationError("wechat: decrypted message is not UTF-8") from exc

    def msg_signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        """SHA1(sort(token, timestamp, nonce, encrypt)) as lower-case hex."""
        return _sha1_sorted(self.token, timestamp, nonce, encrypted)

    def verify_msg_signature(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> bool:
        """Constant-time check of a `msg_signature` over the ciphertext."""
        if not (signature and timestamp and nonce and encrypted):
            return False
        return _same(self.msg_signature(timestamp, nonce, encrypted), signature)

    def encrypted_reply(self, xml: str, timestamp: str, nonce: str, *, random16: bytes | None = None) -> str:
        """The passive-reply envelope (Encrypt, MsgSignature, TimeStamp, Nonce) for a plaintext reply XML."""
        if not (_SAFE_TOKEN.match(timestamp) and _SAFE_TOKEN.match(nonce)):
            raise ValueError("timestamp and nonce must be short alphanumeric strings")
        encrypt = self.encrypt(xml, random16=random16)
        signature = self.msg_signature(timestamp, nonce, encrypt)
        return _REPLY_TEMPLATE.format(encrypt=encrypt, signature=signature, timestamp=timestamp, nonce=nonce)


# --------------------------------------------------------------------------------------------- XML


XmlValue = str | dict[str, Any]


class _Builder:
    """Collects a WeChat <xml> document into a dict, with expat refusing any DTD or entity declaration."""

    def __init__(self) -> None:
        self.root_tag = ""
        self.stack: list[tuple[str, dict[str, Any], list[str], bool]] = []  # tag, children, text, has_children
        self.result: dict[str, Any] = {}

    def start(self, tag: str, _attrs: dict[str, str]) -> None:
        if not self.stack:
            self.root_tag = tag
        else:
            name, children, text, _ = self.stack[-1]
            self.stack[-1] = (name, children, text, True)
        self.stack.append((tag, {}, [], False))

    def end(self, tag: str) -> None:
        name, children, text, has_children = self.stack.pop()
        value: XmlValue = children if has_children else "".join(text).strip()
        if not self.stack:
            self.result = children
            return
        parent = self.stack[-1][1]
        if name in parent:
            if len(self.stack) == 1:  # duplicate top-level field: ambiguous, refuse
                raise ValidationError(f"wechat: duplicate <{name}>")
            existing = parent[name]
            parent[name] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            parent[name] = value

    def chars(self, data: str) -> None:
        if self.stack:
            self.stack[-1][2].append(data)


def _refuse_dtd(*_args: object) -> NoReturn:
    raise ValidationError("wechat: XML with a DOCTYPE or entity declaration is refused")


def _parse_xml(raw: bytes | str) -> dict[str, Any]:
    """Parse a flat WeChat <xml> document into {field: text | nested dict}; ValidationError if unsafe/malformed."""
    data = raw.encode("utf-8") if isinstance(raw, str) else raw
    if not data.strip():
        raise ValidationError("wechat: empty XML body")
    if len(data) > MAX_XML_BYTES:
        raise ValidationError("wechat: XML body too large")
    builder = _Builder()
    parser = xml.parsers.expat.ParserCreate()
    parser.SetParamEntityParsing(xml.parsers.expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse_dtd
    parser.EntityDeclHandler = _refuse_dtd
    parser.UnparsedEntityDeclHandler = _refuse_dtd
    parser.ExternalEntityRefHandler = _refuse_dtd
    parser.StartElementHandler = builder.start
    parser.EndElementHandler = builder.end
    parser.CharacterDataHandler = builder.chars
    try:
        parser.Parse(data, True)
    except xml.parsers.expat.ExpatError as exc:
        raise ValidationError(f"wechat: malformed XML ({exc})") from exc
    if builder.root_tag != "xml":
        raise ValidationError("wechat: root element must be <xml>")
    return builder.result


def _text(fields: Mapping[str, Any], name: str) -> str:
    value = fields.get(name, "")
    return value if isinstance(value, str) else ""


_PLACEHOLDERS = {
    "image": "[图片]",
    "voice": "[语音]",
    "video": "[视频]",
    "shortvideo": "[小视频]",
    "file": "[文件]",
}

_METADATA_FIELDS = {
    "MsgId": "msg_id",
    "MediaId": "media_id",
    "PicUrl": "pic_url",
    "Format": "format",
    "Recognition": "recognition",
    "ThumbMediaId": "thumb_media_id",
    "Location_X": "location_x",
    "Location_Y": "location_y",
    "Scale": "scale",
    "Label": "label",
    "Title": "title",
    "Description": "description",
    "Url": "url",
    "EventKey": "event_key",
    "Ticket": "ticket",
    "Latitude": "latitude",
    "Longitude": "longitude",
    "Precision": "precision",
    "MsgDataId": "msg_data_id",
    "Idx": "idx",
    "MenuId": "menu_id",
}


def parse_message_xml(xml: bytes | str, received_at: datetime) -> InboundMessage:
    """Parse a decrypted WeChat push (a user message or an event) into an InboundMessage.

    Messages dedupe on MsgId ("wechat:<MsgId>"); events, which carry none, on FromUserName + CreateTime +
    Event as WeChat's docs recommend. Voice, video and short-video attachments have no URL of their own:
    they are given as "wechat-media:<MediaId>" (fetch via the media API); locations as a geo: URI.
    """
    fields = _parse_xml(xml)
    open_id = _text(fields, "FromUserName")
    msg_type = _text(fields, "MsgType").lower()
    create_time = _text(fields, "CreateTime")
    if not open_id:
        raise ValidationError("wechat: FromUserName missing")
    if not msg_type:
        raise ValidationError("wechat: MsgType missing")
    if create_time and not create_time.isdigit():
        raise ValidationError("wechat: CreateTime is not an integer")

    metadata: dict[str, Any] = {
        "to_user": _text(fields, "ToUserName"),
        "msg_type": msg_type,
        "create_time": int(create_time) if create_time else None,
    }
    for xml_name, key in _METADATA_FIELDS.items():
        value = _text(fields, xml_name)
        if value:
            metadata[key] = value
    customer = CustomerRef(external_id=open_id)

    if msg_type == "event":
        event_name = _text(fields, "Event")
        if not event_name:
            raise ValidationError("wechat: event without Event")
        metadata["event"] = event_name
        return InboundMessage(
            channel=CHANNEL,
            source=SOURCE,
            dedupe_key=f"wechat:{open_id}:{create_time}:{event_name}",
            customer=customer,
            text="",
            received_at=received_at,
            kind="event",
            event=event_name.lower(),
            metadata=metadata,
        )

    msg_id = _text(fields, "MsgId")
    dedupe_key = f"wechat:{msg_id}" if msg_id else f"wechat:{open_id}:{create_time}:{msg_type}"
    media_id = _text(fields, "MediaId")
    attachments: list[Attachment] = []
    text = _PLACEHOLDERS.get(msg_type, "")

    if msg_type == "text":
        text = _text(fields, "Content")
    elif msg_type == "image":
        url = _text(fields, "PicUrl") or (f"wechat-media:{media_id}" if media_id else "")
        if url:
            attachments.append(Attachment(url=url, type="image"))
    elif msg_type == "voice":
        text = _text(fields, "Recognition") or text
        if media_id:
            fmt = _text(fields, "Format")
            name = f"{media_id}.{fmt.lower()}" if fmt else ""
            attachments.append(Attachment(url=f"wechat-media:{media_id}", type="voice", name=name))
    elif msg_type in ("video", "shortvideo"):
        if media_id:
            attachments.append(Attachment(url=f"wechat-media:{media_id}", type="video"))
    elif msg_type == "location":
        x, y, label = _text(fields, "Location_X"), _text(fields, "Location_Y"), _text(fields, "Label")
        text = f"[位置] {label} ({x},{y})" if label else f"[位置] ({x},{y})"
        attachments.append(Attachment(url=f"geo:{x},{y}", type="location", name=label))
    elif msg_type == "link":
        title, description, url = _text(fields, "Title"), _text(fields, "Description"), _text(fields, "Url")
        text = "\n".join(part for part in (f"[链接] {title}".rstrip(), description, url) if part)
        if url:
            attachments.append(Attachment(url=url, type="link", name=title))
    else:
        text = _text(fields, "Content") or f"[{msg_type}]"

    return InboundMessage(
        channel=CHANNEL,
        source=SOURCE,
        dedupe_key=dedupe_key,
        customer=customer,
        text=text,
        received_at=received_at,
        attachments=tuple(attachments),
        metadata=metadata,
    )


def parse_push(
    query: Mapping[str, str],
    body: bytes,
    *,
    token: str,
    app_id: str,
    encoding_aes_key: str,
    received_at: datetime,
) -> InboundMessage:
    """Verify and parse one POST from WeChat (the whole webhook handler, without HTTP).

    `encrypt_type=aes` (safe/compatible mode): `msg_signature` must sign the outer <Encrypt>, which must
    decrypt to our AppID; a `signature` parameter, when present, must be valid too. Otherwise (plaintext
    mode, `encrypt_type` absent or "raw") `signature` = SHA1(sort(token, timestamp, nonce)) is required.
    Missing or forged parameters raise AuthenticationError; a bad body raises ValidationError.

    No timestamp freshness window is enforced: neither WeChat's official WXBizMsgCrypt samples nor wechatpy
    check one, WeChat's own retries reuse the original timestamp, and a replayed push carries the same
    MsgId (or FromUserName+CreateTime+Event) and is dropped by the intake dedupe.
    """
    timestamp = query.get("timestamp", "")
    nonce = query.get("nonce", "")
    signature = query.get("signature", "")
    encrypt_type = (query.get("encrypt_type") or "raw").lower()
    if not timestamp or not nonce:
        raise AuthenticationError("wechat: timestamp and nonce are required")

    if encrypt_type == "aes":
        msg_signature = query.get("msg_signature", "")
        if not msg_signature:
            raise AuthenticationError("wechat: msg_signature is required in aes mode")
        if signature and not verify_url_signature(token, signature, timestamp, nonce):
            raise AuthenticationError("wechat: bad signature")
        outer = _parse_xml(body)
        encrypted = _text(outer, "Encrypt")
        if not encrypted:
            raise AuthenticationError("wechat: <Encrypt> missing")
        crypto = WeChatCrypto(token, encoding_aes_key, app_id)
        if not crypto.verify_msg_signature(msg_signature, timestamp, nonce, encrypted):
            raise AuthenticationError("wechat: bad msg_signature")
        return parse_message_xml(crypto.decrypt(encrypted), received_at)

    if encrypt_type != "raw":
        raise ValidationError(f"wechat: unsupported encrypt_type {encrypt_type!r}")
    if not signature:
        raise AuthenticationError("wechat: signature is required")
    if not verify_url_signature(token, signature, timestamp, nonce):
        raise AuthenticationError("wechat: bad signature")
    return parse_message_xml(body, received_at)


# --------------------------------------------------------------------------------------------- sender


class AccessTokenStore(Protocol):
    """Where access tokens are cached between calls (and, in production, between Lambda instances)."""

    def get(self, app_id: str) -> tuple[str, datetime] | None: ...

    def put(self, app_id: str, token: str, expires_at: datetime) -> None: ...


class InMemoryAccessTokenStore:
    """An AccessTokenStore in a dict: per process, for tests and local runs."""

    def __init__(self) -> None:
        self._tokens: dict[str, tuple[str, datetime]] = {}

    def get(self, app_id: str) -> tuple[str, datetime] | None:
        return self._tokens.get(app_id)

    def put(self, app_id: str, token: str, expires_at: datetime) -> None:
        self._tokens[app_id] = (token, expires_at)


def _errcode_error(what: str, errcode: int, errmsg: str) -> SendError:
    """Map a WeChat errcode to a SendError: busy/rate-limited retry, everything else (4xxxx…) does not."""
    if errcode == 45015:
        detail = "customer-service window (48 h since the user's last message) has expired"
    elif errcode == 43004:
        detail = "the user has unsubscribed"
    else:
        detail = errmsg
    return SendError(f"wechat {what}: errcode {errcode}: {detail}", retryable=errcode in RETRYABLE_ERRCODES)


class WeChatSender:
    """Sends customer-service (客服) messages through the Official Account API with a cached access token."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        api_base: str,
        http: HttpClient,
        token_store: AccessTokenStore,
        now: Callable[[], datetime],
    ) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.api_base = api_base.rstrip("/")
        self.http = http
        self.token_store = token_store
        self.now = now

    def send_text(self, open_id: str, text: str) -> str:
        """Send a text message to `open_id`; returns a delivery reference, raises SendError on failure."""
        if not open_id or not text:
            raise SendError("wechat send: open_id and text are required", retryable=False)
        payload = {"touser": open_id, "msgtype": "text", "text": {"content": text}}
        return self._send(payload)

    def _send(self, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        token = self._access_token(force_refresh=False)
        for attempt in range(2):
            url = f"{self.api_base}/cgi-bin/message/custom/send?" + urllib.parse.urlencode({"access_token": token})
            data = self._call(
                "send", "POST", url, body=body, headers={"Content-Type": "application/json; charset=utf-8"}
            )
            errcode = _errcode(data)
            if errcode == 0:
                msg_id = data.get("msgid")
                return f"wechat:{msg_id}" if msg_id else "wechat:ok"
            if errcode in TOKEN_ERRCODES and attempt == 0:
                token = self._access_token(force_refresh=True)
                continue
            raise _errcode_error("send", errcode, str(data.get("errmsg", "")))
        raise SendError("wechat send: access token rejected after refresh", retryable=True)  # pragma: no cover

    def _access_token(self, *, force_refresh: bool) -> str:
        now = self.now()
        if not force_refresh:
            cached = self.token_store.get(self.app_id)
            if cached is not None and now < cached[1]:
                return cached[0]
        query = urllib.parse.urlencode(
            {"grant_type": "client_credential", "appid": self.app_id, "secret": self.app_secret}
        )
        data = self._call("token", "GET", f"{self.api_base}/cgi-bin/token?{query}")
        token = data.get("access_token")
        if not isinstance(token, str) or not token:
            errcode = _errcode(data)
            raise _errcode_error("token", errcode if errcode else -1, str(data.get("errmsg", "no access_token")))
        try:
            expires_in = int(data.get("expires_in", 7200))
        except (TypeError, ValueError):
            expires_in = 7200
        lifetime = timedelta(seconds=expires_in)
        ttl = lifetime - TOKEN_SAFETY_MARGIN if lifetime > 2 * TOKEN_SAFETY_MARGIN else lifetime / 2
        self.token_store.put(self.app_id, token, now + ttl)
        return token

    def _call(
        self, what: str, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        try:
            resp: HttpResponse = self.http.request(method, url, body=body, headers=headers)
        except SendError:
            raise
        except OSError as exc:
            raise SendError(f"wechat {what}: {exc}", retryable=True) from exc
        if resp.status >= 500 or resp.status == 429:
            raise SendError(f"wechat {what}: HTTP {resp.status}", retryable=True)
        if resp.status >= 400:
            raise SendError(f"wechat {what}: HTTP {resp.status}", retryable=False)
        try:
            data = resp.json()
        except (ValueError, UnicodeDecodeError) as exc:
            raise SendError(f"wechat {what}: response is not JSON", retryable=True) from exc
        if not isinstance(data, dict):
            raise SendError(f"wechat {what}: unexpected response", retryable=True)
        return data


def _errcode(data: Mapping[str, Any]) -> int:
    try:
        return int(data.get("errcode", 0) or 0)
    except (TypeError, ValueError):
        return -1
