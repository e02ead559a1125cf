"""WeChat Official Account channel: signatures, 消息加解密 vectors, XML parsing, push handling, sender."""
from __future__ import annotations

import base64
import json
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chalicelib.channels.http import HttpResponse, SendError
from chalicelib.channels.wechat import (
    InMemoryAccessTokenStore,
    WeChatCrypto,
    WeChatSender,
    parse_message_xml,
    parse_push,
    verify_url_signature,
)
from chalicelib.domain.errors import AuthenticationError, ValidationError
from chalicelib.domain.messages import Attachment

EVENTS = Path(__file__).resolve().parents[2] / "events"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


def fixture(name: str) -> bytes:
    return (EVENTS / f"wechat_{name}.xml").read_bytes()


# ------------------------------------------------------------------------------------------------ vectors
# Rust wechat crate (messense/wechat-rust, src/crypto/prp.rs tests) — same key as wechatpy's tests.
RUST_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR"
# wechatpy tests/test_crypto.py (enterprise crypto, identical scheme with corp_id in place of AppID).
WP_TOKEN, WP_KEY, WP_ID = "123456", "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR", "wx49f0ab532d5d035a"
WP_ECHO = "4ByGGj+sVCYcvGeQYhaKIk1o0pQRNbRjxybjTGblXrBaXlTXeOo1+bXFXDQQb1o6co6Yh9Bv41n7hOchLF6p+Q=="
WP_REPLY = """<xml>
<MsgType><![CDATA[text]]></MsgType>
<Content><![CDATA[test]]></Content>
<FromUserName><![CDATA[wx49f0ab532d5d035a]]></FromUserName>
<ToUserName><![CDATA[messense]]></ToUserName>
<AgentID>1</AgentID>
<CreateTime>1411525903</CreateTime>
</xml>"""
WP_REPLY_ENCRYPTED = """<xml>
<Encrypt><![CDATA[9s4gMv99m88kKTh/H8IdkOiMg6bisoy3ypwy9H4hvSPe9nsGaqyw5hhSjdYbcrKk+j3nba4HMOTzHrluLBYqxgNcBqGsL8GqxlhZgURnAtObvesEl5nZ+uBE8bviY0LWke8Zy9V/QYKxNV2FqllNXcfmstttyIkMKCCmVbCFM2JTF5wY0nFhHZSjPUL2Q1qvSUCUld+/WIXrx0oyKQmpB6o8NRrrNrsDf03oxI1p9FxUgMnwKKZeOA/uu+2IEvEBtb7muXsVbwbgX05UPPJvFurDXafG0RQyPR+mf1nDnAtQmmNOuiR5MIkdQ39xn1vWwi1O5oazPoQJz0nTYjxxEE8kv3kFxtAGVRe3ypD3WeK2XeFYFMNMpatF9XiKzHo3]]></Encrypt>
<MsgSignature><![CDATA[407518b7649e86ef23978113f92d27afa9296533]]></MsgSignature>
<TimeStamp>1411525903</TimeStamp>
<Nonce><![CDATA[461056294]]></Nonce>
</xml>"""
# Official WXBizMsgCrypt Java sample (WXBizMsgCryptTest.java in WeChat's cryptoDemo).
OFF_TOKEN, OFF_KEY, OFF_APPID = "pamtest", "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxb11529c136998cb6"
OFF_REPLY2 = (
    "<xml><ToUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></ToUserName><FromUserName><![CDATA[gh_7f083739789a]]>"
    "</FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[video]]></MsgType><Video><MediaId><![CDATA["
    "eYJ1MbwPRJtOvIEabaxHs7TX2D-HV71s79GUxqdUkjm6Gs2Ed1KF3ulAOA9H1xG0]]></MediaId><Title><![CDATA[testCallBackReplyVideo]]>"
    "</Title><Description><![CDATA[testCallBackReplyVideo]]></Description></Video></xml>"
)
OFF_ENCRYPTED2 = (
    "jn1L23DB+6ELqJ+6bruv23M2GmYfkv0xBh2h+XTBOKVKcgDFHle6gqcZ1cZrk3e1qjPQ1F4RsLWzQRG9udbKWesxlkupqcEcW7ZQweImX9+wLMa0GaUz"
    "pkycA8+IamDBxn5loLgZpnS7fVAbExOkK5DYHBmv5tptA9tklE/fTIILHR8HLXa5nQvFb3tYPKAlHF3rtTeayNf0QuM+UW/wM9enGIDIJHF7CLHiDNAY"
    "xr+r+OrJCmPQyTy8cVWlu9iSvOHPT/77bZqJucQHQ04sq7KZI27OcqpQNSto2OdHCoTccjggX5Z9Mma0nMJBU+jLKJ38YB1fBIz+vBzsYjrTmFQ44Yf"
    "eEuZ+xRTQwr92vhA9OxchWVINGC50qE/6lmkwWTwGX9wtQpsJKhP+oS7rvTY8+VdzETdfakjkwQ5/Xka042OlUb1/slTwo4RscuQ+RdxSGvDahxAJ6+"
    "EAjLt9d8igHngxIbf6YyqqROxuxqIeIch3CssH/LqRs+iAcILvApYZckqmA7FNERspKA5f8GoJ9sv8xmGvZ9Yrf57cExWtnX8aCMMaBropU/1k+hKP5"
    "LVdzbWCG0hGwx/dQudYR/eXp3P0XxjlFiy+9DMlaFExWUZQDajPkdPrEeOwofJb"
)


def test_rust_vector_encrypt_and_decrypt() -> None:
    crypto = WeChatCrypto("token", RUST_KEY, "rust")
    encrypted = crypto.encrypt("test", random16=b"1234567890123456")
    assert encrypted == "9s4gMv99m88kKTh/H8IdkNiFGeG9pd7vNWl50fGRWXY="
    assert crypto.decrypt(encrypted) == "test"


def test_wechatpy_echo_signature_vector() -> None:
    crypto = WeChatCrypto(WP_TOKEN, WP_KEY, WP_ID)
    assert crypto.msg_signature("1411443780", "437374425", WP_ECHO) == "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96"
    assert crypto.verify_msg_signature("dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374425", WP_ECHO)
    # wechatpy's "should fail" case: the nonce is off by one
    assert not crypto.verify_msg_signature(
        "dd6b9c95b495b3f7e2901bfbc76c664930ffdb96", "1411443780", "437374424", WP_ECHO
    )
    assert crypto.decrypt(WP_ECHO).isdigit()  # the echostr decrypts under the right id


def test_wechatpy_encrypt_message_vector_is_our_encrypted_reply() -> None:
    crypto = WeChatCrypto(WP_TOKEN, WP_KEY, WP_ID)
    reply = crypto.encrypted_reply(WP_REPLY, "1411525903", "461056294", random16=b"1234567890123456")
    assert reply == WP_REPLY_ENCRYPTED


def test_wechatpy_decrypt_message_vector_through_parse_push() -> None:
    query = {
        "encrypt_type": "aes",
        "msg_signature": "74d92dfeb87ba7c714f89d98870ae5eb62dff26d",
        "timestamp": "1411525903",
        "nonce": "461056294",
    }
    msg = parse_push(
        query, fixture("encrypted_wechatpy"), token=WP_TOKEN, app_id=WP_ID, encoding_aes_key=WP_KEY, received_at=T0
    )
    assert msg.text == "test"
    assert msg.customer.external_id == "messense"
    assert msg.dedupe_key == "wechat:4363689963896700987"
    assert msg.metadata["to_user"] == WP_ID
    assert msg.received_at == T0


def test_official_java_sample_vectors() -> None:
    crypto = WeChatCrypto(OFF_TOKEN, OFF_KEY, OFF_APPID)
    first = crypto.encrypt("我是中文abcd123", random16=b"aaaabbbbccccdddd")
    assert first == "jn1L23DB+6ELqJ+6bruv21Y6MD7KeIfP82D6gU39rmkgczbWwt5+3bnyg5K55bgVtVzd832WzZGMhkP72vVOfg=="
    assert crypto.encrypt(OFF_REPLY2, random16=b"aaaabbbbccccdddd") == OFF_ENCRYPTED2
    assert crypto.decrypt(first) == "我是中文abcd123"
    assert crypto.decrypt(OFF_ENCRYPTED2) == OFF_REPLY2


def test_official_verify_url_sample() -> None:
    crypto = WeChatCrypto("QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C", "wx5823bf96d3bd56c7")
    echo = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
    assert crypto.verify_msg_signature("5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "1409659589", "263014780", echo)
    assert crypto.decrypt(echo) == "1616140317555161061"


def test_encrypted_reply_roundtrip_through_parse_push() -> None:
    crypto = WeChatCrypto(OFF_TOKEN, OFF_KEY, OFF_APPID)
    inner = fixture("text").decode()
    envelope = crypto.encrypted_reply(inner, "1409304348", "xxxxxx")
    sig = envelope.split("<MsgSignature><![CDATA[")[1].split("]]>")[0]
    query = {"encrypt_type": "aes", "msg_signature": sig, "timestamp": "1409304348", "nonce": "xxxxxx"}
    msg = parse_push(query, envelope.encode(), token=OFF_TOKEN, app_id=OFF_APPID, encoding_aes_key=OFF_KEY,
                     received_at=T0)
    assert msg.text == "this is a test"


# ------------------------------------------------------------------------------------------------ signature


def test_url_signature_sorted_sha1_and_refusals() -> None:
    # sha1("".join(sorted(["123456", "1411443780", "437374425"])))
    import hashlib

    good = hashlib.sha1(b"".join(sorted([b"123456", b"1411443780", b"437374425"]))).hexdigest()
    assert good == hashlib.sha1(b"1234561411443780437374425").hexdigest()
    assert verify_url_signature("123456", good, "1411443780", "437374425")
    assert verify_url_signature("123456", good.upper(), "1411443780", "437374425")
    assert not verify_url_signature("123456", good, "1411443781", "437374425")
    assert not verify_url_signature("other", good, "1411443780", "437374425")
    assert not verify_url_signature("123456", "", "1411443780", "437374425")
    assert not verify_url_signature("123456", "zz" * 20, "1411443780", "437374425")
    assert not verify_url_signature("123456", "签名", "1411443780", "437374425")


# ------------------------------------------------------------------------------------------------ decrypt refusals


def _raw_encrypt(key_b64: str, plain: bytes) -> str:
    key = base64.b64decode(key_b64 + "=")
    enc = Cipher(algorithms.AES(key), modes.CBC(key[:16])).encryptor()
    return base64.b64encode(enc.update(plain) + enc.finalize()).decode()


def test_wrong_appid_inside_ciphertext_refused() -> None:
    other = WeChatCrypto(OFF_TOKEN, OFF_KEY, "wx0000000000000000").encrypt("<xml/>")
    with pytest.raises(AuthenticationError, match="AppID"):
        WeChatCrypto(OFF_TOKEN, OFF_KEY, OFF_APPID).decrypt(other)
    # the Rust vector is bound to "rust": any other id refuses it
    with pytest.raises(AuthenticationError):
        WeChatCrypto("t", RUST_KEY, "rus").decrypt("9s4gMv99m88kKTh/H8IdkNiFGeG9pd7vNWl50fGRWXY=")


def test_bad_padding_refused() -> None:
    body = b"1234567890123456" + (4).to_bytes(4, "big") + b"test" + b"rust"  # 28 bytes
    crypto = WeChatCrypto("t", RUST_KEY, "rust")
    assert crypto.decrypt(_raw_encrypt(RUST_KEY, body + b"\x04" * 4)) == "test"
    for tail in (b"\x00" * 4, b"\x01\x02\x03\x04", b"\x21" * 4):  # zero, inconsistent, > 32
        with pytest.raises(AuthenticationError, match="padding"):
            crypto.decrypt(_raw_encrypt(RUST_KEY, body + tail))


def test_bad_length_and_base64_refused() -> None:
    crypto = WeChatCrypto("t", RUST_KEY, "rust")
    huge_len = b"1234567890123456" + (9999).to_bytes(4, "big") + b"testrust" + b"\x04" * 4
    with pytest.raises(AuthenticationError, match="length"):
        crypto.decrypt(_raw_encrypt(RUST_KEY, huge_len))
    with pytest.raises(AuthenticationError, match="base64"):
        crypto.decrypt("not base64!!")
    with pytest.raises(AuthenticationError, match="multiple"):
        crypto.decrypt(base64.b64encode(b"x" * 20).decode())
    with pytest.raises(AuthenticationError):
        crypto.decrypt("")


def test_bad_encoding_aes_key_is_a_config_error() -> None:
    with pytest.raises(ValueError):
        WeChatCrypto(OFF_TOKEN, "abcde", OFF_APPID)
    with pytest.raises(ValueError):
        WeChatCrypto(OFF_TOKEN, "!" * 43, OFF_APPID)


# ------------------------------------------------------------------------------------------------ parse_push


def _plain_query(token: str, timestamp: str = "1409304348", nonce: str = "123") -> dict[str, str]:
    import hashlib

    sig = hashlib.sha1("".join(sorted([token, timestamp, nonce])).encode()).hexdigest()
    return {"signature": sig, "timestamp": timestamp, "nonce": nonce, "openid": "fromUser"}


def test_plain_push_verified_and_parsed() -> None:
    msg = parse_push(_plain_query("tok"), fixture("text"), token="tok", app_id="a", encoding_aes_key=OFF_KEY,
                     received_at=T0)
    assert msg.text == "this is a test"
    q = _plain_query("tok") | {"encrypt_type": "raw"}
    assert parse_push(q, fixture("text"), token="tok", app_id="a", encoding_aes_key=OFF_KEY,
                      received_at=T0).dedupe_key == "wechat:1234567890123456"


@pytest.mark.parametrize("drop", ["signature", "timestamp", "nonce"])
def test_plain_push_missing_param_refused(drop: str) -> None:
    q = _plain_query("tok")
    del q[drop]
    with pytest.raises(AuthenticationError):
        parse_push(q, fixture("text"), token="tok", app_id="a", encoding_aes_key=OFF_KEY, received_at=T0)


def test_plain_push_forged_signature_refused() -> None:
    q = _plain_query("tok")
    q["signature"] = q["signature"][:-1] + ("0" if q["signature"][-1] != "0" else "1")
    with pytest.raises(AuthenticationError):
        parse_push(q, fixture("text"), token="tok", app_id="a", encoding_aes_key=OFF_KEY, received_at=T0)
    with pytest.raises(AuthenticationError):
        parse_push(_plain_query("tok"), fixture("text"), token="other", app_id="a", encoding_aes_key=OFF_KEY,
                   received_at=T0)


def _aes_push(inner: str, *, app_id: str = OFF_APPID) -> tuple[dict[str, str], bytes]:
    crypto = WeChatCrypto(OFF_TOKEN, OFF_KEY, app_id)
    encrypted = crypto.encrypt(inner)
    body = f"<xml><ToUserName><![CDATA[gh_x]]></ToUserName><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
    query = _plain_query(OFF_TOKEN) | {
        "encrypt_type": "aes",
        "msg_signature": crypto.msg_signature("1409304348", "123", encrypted),
    }
    return query, body.encode()


def _parse_aes(query: dict[str, str], body: bytes) -> object:
    return parse_push(query, body, token=OFF_TOKEN, app_id=OFF_APPID, encoding_aes_key=OFF_KEY, received_at=T0)


def test_aes_push_ok() -> None:
    query, body = _aes_push(fixture("image").decode())
    msg = parse_push(query, body, token=OFF_TOKEN, app_id=OFF_APPID, encoding_aes_key=OFF_KEY, received_at=T0)
    assert msg.attachments == (Attachment(url="this is a url", type="image"),)


def test_aes_push_tampered_msg_signature_refused() -> None:
    query, body = _aes_push(fixture("text").decode())
    query["msg_signature"] = "0" * 40
    with pytest.raises(AuthenticationError, match="msg_signature"):
        _parse_aes(query, body)


def test_aes_push_missing_msg_signature_or_encrypt_refused() -> None:
    query, body = _aes_push(fixture("text").decode())
    with pytest.raises(AuthenticationError):
        _parse_aes({k: v for k, v in query.items() if k != "msg_signature"}, body)
    with pytest.raises(AuthenticationError, match="Encrypt"):
        _parse_aes(query, b"<xml><ToUserName>gh</ToUserName></xml>")


def test_aes_push_tampered_ciphertext_refused() -> None:
    query, body = _aes_push(fixture("text").decode())
    tampered = body.replace(b"<![CDATA[", b"<![CDATA[A", 2)  # shifts ToUserName and Encrypt
    with pytest.raises(AuthenticationError):
        _parse_aes(query, tampered)


def test_aes_push_signed_but_foreign_appid_refused() -> None:
    query, body = _aes_push(fixture("text").decode(), app_id="wx_someone_else")
    with pytest.raises(AuthenticationError, match="AppID"):
        _parse_aes(query, body)


def test_aes_push_with_bad_plain_signature_refused() -> None:
    query, body = _aes_push(fixture("text").decode())
    query["signature"] = "1" * 40
    with pytest.raises(AuthenticationError):
        _parse_aes(query, body)


def test_unknown_encrypt_type_refused() -> None:
    with pytest.raises(ValidationError):
        parse_push(_plain_query("tok") | {"encrypt_type": "rsa"}, fixture("text"), token="tok", app_id="a",
                   encoding_aes_key=OFF_KEY, received_at=T0)


# ------------------------------------------------------------------------------------------------ parse_message_xml


def test_text_message() -> None:
    msg = parse_message_xml(fixture("text"), T0)
    assert (msg.channel, msg.source, msg.kind) == ("WECHAT", "wechat", "message")
    assert msg.customer.external_id == "fromUser"
    assert msg.text == "this is a test"
    assert msg.dedupe_key == "wechat:1234567890123456"
    assert msg.metadata["to_user"] == "toUser"
    assert msg.metadata["msg_type"] == "text"
    assert msg.metadata["create_time"] == 1348831860
    assert msg.received_at == T0
    assert parse_message_xml(fixture("text").decode(), T0) == msg


def test_image_message() -> None:
    msg = parse_message_xml(fixture("image"), T0)
    assert msg.attachments == (Attachment(url="this is a url", type="image"),)
    assert msg.metadata["media_id"] == "media_id"
    assert msg.metadata["pic_url"] == "this is a url"
    assert msg.text == "[图片]"


def test_voice_message_with_and_without_recognition() -> None:
    plain = parse_message_xml(fixture("voice"), T0)
    assert plain.text == "[语音]"
    assert plain.attachments == (Attachment(url="wechat-media:media_id", type="voice", name="media_id.format"),)
    assert plain.metadata["format"] == "Format"
    recognised = parse_message_xml(fixture("voice_recognition"), T0)
    assert recognised.text == "腾讯微信团队"
    assert recognised.metadata["recognition"] == "腾讯微信团队"


@pytest.mark.parametrize("name", ["video", "shortvideo"])
def test_video_messages(name: str) -> None:
    msg = parse_message_xml(fixture(name), T0)
    assert msg.attachments == (Attachment(url="wechat-media:media_id", type="video"),)
    assert msg.metadata["thumb_media_id"] == "thumb_media_id"
    assert msg.metadata["msg_type"] == name
    assert msg.kind == "message"


def test_location_message() -> None:
    msg = parse_message_xml(fixture("location"), T0)
    assert msg.text == "[位置] 位置信息 (23.134521,113.358803)"
    assert msg.attachments == (Attachment(url="geo:23.134521,113.358803", type="location", name="位置信息"),)
    assert msg.metadata["scale"] == "20"


def test_link_message() -> None:
    msg = parse_message_xml(fixture("link"), T0)
    assert msg.text == "[链接] 公众平台官网链接\n公众平台官网链接\nurl"
    assert msg.attachments == (Attachment(url="url", type="link", name="公众平台官网链接"),)
    assert msg.metadata["title"] == "公众平台官网链接"


@pytest.mark.parametrize(
    ("name", "event", "raw_event", "open_id"),
    [
        ("event_subscribe", "subscribe", "subscribe", "FromUser"),
        ("event_unsubscribe", "unsubscribe", "unsubscribe", "FromUser"),
        ("event_subscribe_qrscene", "subscribe", "subscribe", "FromUser"),
        ("event_scan", "scan", "SCAN", "FromUser"),
        ("event_location", "location", "LOCATION", "fromUser"),
        ("event_click", "click", "CLICK", "FromUser"),
        ("event_view", "view", "VIEW", "FromUser"),
    ],
)
def test_events(name: str, event: str, raw_event: str, open_id: str) -> None:
    msg = parse_message_xml(fixture(name), T0)
    assert msg.kind == "event"
    assert msg.event == event
    assert msg.text == ""
    assert msg.attachments == ()
    assert msg.customer.external_id == open_id
    assert msg.dedupe_key == f"wechat:{open_id}:123456789:{raw_event}"
    assert msg.metadata["msg_type"] == "event"


def test_event_details_in_metadata() -> None:
    assert parse_message_xml(fixture("event_subscribe_qrscene"), T0).metadata["event_key"] == "qrscene_123123"
    assert parse_message_xml(fixture("event_scan"), T0).metadata["ticket"] == "TICKET"
    assert parse_message_xml(fixture("event_click"), T0).metadata["event_key"] == "EVENTKEY"
    assert parse_message_xml(fixture("event_view"), T0).metadata["event_key"] == "www.qq.com"
    loc = parse_message_xml(fixture("event_location"), T0).metadata
    assert (loc["latitude"], loc["longitude"], loc["precision"]) == ("23.137466", "113.352425", "119.385040")


def test_nested_event_fields_do_not_break_parsing() -> None:
    xml = (
        "<xml><ToUserName><![CDATA[gh]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>"
        "<CreateTime>1408090651</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[pic_sysphoto]]></Event><EventKey><![CDATA[6]]></EventKey>"
        "<SendPicsInfo><Count>2</Count><PicList><item><PicMd5Sum><![CDATA[a]]></PicMd5Sum></item>"
        "<item><PicMd5Sum><![CDATA[b]]></PicMd5Sum></item></PicList></SendPicsInfo></xml>"
    )
    msg = parse_message_xml(xml, T0)
    assert msg.event == "pic_sysphoto"
    assert msg.metadata["event_key"] == "6"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<xml><FromUserName>&lol2;</FromUserName><MsgType>text</MsgType><Content>x</Content></xml>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<xml><FromUserName>u</FromUserName><MsgType>text</MsgType><Content>&xxe;</Content></xml>"""
BARE_DOCTYPE = b'<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd"><xml><FromUserName>u</FromUserName></xml>'


@pytest.mark.parametrize("payload", [BILLION_LAUGHS, XXE, BARE_DOCTYPE])
def test_doctype_and_entities_refused(payload: bytes) -> None:
    with pytest.raises(ValidationError, match="DOCTYPE"):
        parse_message_xml(payload, T0)


def test_doctype_in_aes_inner_xml_refused() -> None:
    query, body = _aes_push(XXE.decode())
    with pytest.raises(ValidationError):
        _parse_aes(query, body)


def test_doctype_text_inside_cdata_is_just_text() -> None:
    xml = fixture("text").replace(b"this is a test", b"<!DOCTYPE x> & <!ENTITY y>")
    assert parse_message_xml(xml, T0).text == "<!DOCTYPE x> & <!ENTITY y>"


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not xml",
        b"<xml><FromUserName>u</FromUserName>",
        b"<root><FromUserName>u</FromUserName><MsgType>text</MsgType></root>",
        b"<xml><MsgType>text</MsgType><Content>x</Content></xml>",  # no FromUserName
        b"<xml><FromUserName>u</FromUserName><Content>x</Content></xml>",  # no MsgType
        b"<xml><FromUserName>u</FromUserName><FromUserName>v</FromUserName><MsgType>text</MsgType></xml>",
        b"<xml><FromUserName>u</FromUserName><MsgType>event</MsgType></xml>",  # event without Event
        b"<xml><FromUserName>u</FromUserName><MsgType>text</MsgType><CreateTime>x</CreateTime></xml>",
    ],
)
def test_malformed_xml_refused(payload: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_message_xml(payload, T0)


def test_oversized_body_refused() -> None:
    with pytest.raises(ValidationError, match="large"):
        parse_message_xml(b"<xml>" + b" " * (1 << 20) + b"</xml>", T0)


def test_unknown_msg_type_kept_as_message() -> None:
    content = b"<Content><![CDATA[this is a test]]></Content>\n"
    xml = fixture("text").replace(b"[text]", b"[miniprogrampage]").replace(content, b"")
    msg = parse_message_xml(xml, T0)
    assert msg.kind == "message"
    assert msg.text == "[miniprogrampage]"


# ------------------------------------------------------------------------------------------------ sender


class FakeHttp:
    """A scripted HttpClient: answers in order, records every request."""

    def __init__(self, *responses: HttpResponse | Exception) -> None:
        self.responses = list(responses)
        self.calls: list[tuple[str, str, bytes | None, dict[str, str] | None]] = []

    def request(
        self, method: str, url: str, *, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> HttpResponse:
        self.calls.append((method, url, body, headers))
        answer = self.responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def ok(data: dict[str, object], status: int = 200) -> HttpResponse:
    return HttpResponse(status, json.dumps(data).encode())


def token_resp(token: str, expires_in: int = 7200) -> HttpResponse:
    return ok({"access_token": token, "expires_in": expires_in})


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def sender(http: FakeHttp, clock: Clock | None = None, store: InMemoryAccessTokenStore | None = None) -> WeChatSender:
    return WeChatSender("wxapp", "s3cret", "https://api.test/", http, store or InMemoryAccessTokenStore(),
                        clock or Clock(T0))


def test_send_text_fetches_token_then_posts_utf8_json() -> None:
    http = FakeHttp(token_resp("TOKEN1"), ok({"errcode": 0, "errmsg": "ok"}))
    assert sender(http).send_text("OPENID", "您好, world") == "wechat:ok"
    method, url, body, _ = http.calls[0]
    assert method == "GET"
    parsed = urllib.parse.urlsplit(url)
    assert parsed.path == "/cgi-bin/token"
    assert urllib.parse.parse_qs(parsed.query) == {
        "grant_type": ["client_credential"], "appid": ["wxapp"], "secret": ["s3cret"]
    }
    method, url, body, headers = http.calls[1]
    assert method == "POST"
    assert url == "https://api.test/cgi-bin/message/custom/send?access_token=TOKEN1"
    assert body is not None and "您好".encode() in body  # ensure_ascii=False
    assert json.loads(body) == {"touser": "OPENID", "msgtype": "text", "text": {"content": "您好, world"}}
    assert headers is not None and headers["Content-Type"].startswith("application/json")


def test_token_cached_across_sends_until_five_minutes_before_expiry() -> None:
    clock = Clock(T0)
    store = InMemoryAccessTokenStore()
    http = FakeHttp(token_resp("T1"), ok({"errcode": 0}), ok({"errcode": 0}), token_resp("T2"), ok({"errcode": 0}))
    s = sender(http, clock, store)
    s.send_text("o", "a")
    clock.at = T0 + timedelta(seconds=7200 - 301)
    s.send_text("o", "b")
    assert store.get("wxapp") == ("T1", T0 + timedelta(seconds=6900))
    clock.at = T0 + timedelta(seconds=6900)
    s.send_text("o", "c")
    urls = [c[1] for c in http.calls]
    assert sum("/cgi-bin/token" in u for u in urls) == 2
    assert urls[2].endswith("access_token=T1") and urls[4].endswith("access_token=T2")


def test_token_shared_through_store_between_senders() -> None:
    store = InMemoryAccessTokenStore()
    store.put("wxapp", "SHARED", T0 + timedelta(hours=1))
    http = FakeHttp(ok({"errcode": 0}))
    sender(http, store=store).send_text("o", "x")
    assert len(http.calls) == 1 and http.calls[0][1].endswith("access_token=SHARED")


@pytest.mark.parametrize("code", [40001, 40014, 42001])
def test_invalid_token_refreshed_once_and_retried(code: int) -> None:
    store = InMemoryAccessTokenStore()
    store.put("wxapp", "STALE", T0 + timedelta(hours=1))
    http = FakeHttp(ok({"errcode": code, "errmsg": "invalid credential"}), token_resp("FRESH"), ok({"errcode": 0}))
    assert sender(http, store=store).send_text("o", "x") == "wechat:ok"
    assert http.calls[2][1].endswith("access_token=FRESH")
    assert store.get("wxapp") is not None and store.get("wxapp")[0] == "FRESH"  # type: ignore[index]


def test_invalid_token_twice_gives_up() -> None:
    http = FakeHttp(token_resp("T1"), ok({"errcode": 40001}), token_resp("T2"), ok({"errcode": 40001}))
    with pytest.raises(SendError) as info:
        sender(http).send_text("o", "x")
    assert len(http.calls) == 4
    assert info.value.retryable is False


@pytest.mark.parametrize(
    ("errcode", "retryable"),
    [(45015, False), (43004, False), (40003, False), (45047, False), (-1, True), (45009, True), (45011, True)],
)
def test_send_errcodes_classified(errcode: int, retryable: bool) -> None:
    http = FakeHttp(token_resp("T"), ok({"errcode": errcode, "errmsg": "e"}))
    with pytest.raises(SendError) as info:
        sender(http).send_text("o", "x")
    assert info.value.retryable is retryable
    assert str(errcode) in str(info.value)


def test_window_expired_message_is_explicit() -> None:
    http = FakeHttp(token_resp("T"), ok({"errcode": 45015, "errmsg": "response out of time limit"}))
    with pytest.raises(SendError, match="48 h"):
        sender(http).send_text("o", "x")


@pytest.mark.parametrize(
    ("answer", "retryable"),
    [
        (HttpResponse(502, b"bad gateway"), True),
        (HttpResponse(429, b""), True),
        (HttpResponse(403, b"forbidden"), False),
        (HttpResponse(200, b"<html>oops</html>"), True),
        (SendError("timeout", retryable=True), True),
        (ConnectionResetError("reset"), True),
    ],
)
def test_transport_failures_classified(answer: HttpResponse | Exception, retryable: bool) -> None:
    http = FakeHttp(token_resp("T"), answer)
    with pytest.raises(SendError) as info:
        sender(http).send_text("o", "x")
    assert info.value.retryable is retryable


@pytest.mark.parametrize(
    ("answer", "retryable"),
    [
        (ok({"errcode": 40125, "errmsg": "invalid appsecret"}), False),
        (ok({"errcode": 40164, "errmsg": "invalid ip, not in whitelist"}), False),
        (ok({"errcode": -1, "errmsg": "system error"}), True),
        (HttpResponse(503, b""), True),
    ],
)
def test_token_fetch_failures_classified(answer: HttpResponse, retryable: bool) -> None:
    store = InMemoryAccessTokenStore()
    with pytest.raises(SendError) as info:
        sender(FakeHttp(answer), store=store).send_text("o", "x")
    assert info.value.retryable is retryable
    assert store.get("wxapp") is None


def test_send_requires_open_id_and_text() -> None:
    http = FakeHttp()
    with pytest.raises(SendError) as info:
        sender(http).send_text("", "x")
    assert info.value.retryable is False
    with pytest.raises(SendError):
        sender(http).send_text("o", "")
    assert http.calls == []
