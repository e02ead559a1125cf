"""Tests for the email channel: SES notifications, MIME parsing, quoting, auto-replies, replies, SES sending."""
from __future__ import annotations

import base64
import hashlib
import json
import quopri
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.header import decode_header, make_header
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from botocore.stub import Stubber
from moto import mock_aws

from chalicelib.channels.email import (
    EmailAttachment,
    OutboundEmail,
    ParsedEmail,
    SesNotification,
    SesSender,
    build_reply,
    decode_bytes,
    decode_rfc2047,
    html_to_text,
    normalize_email,
    normalize_message_id,
    parse_mime,
    parse_ses_notification,
    reply_subject,
    strip_quoted,
    ticket_id_from_subject,
    to_inbound,
)
from chalicelib.channels.http import SendError
from chalicelib.domain.errors import ValidationError
from chalicelib.domain.messages import Attachment, InboundMessage

EVENTS = Path(__file__).resolve().parents[2] / "events"
NOW = datetime(2026, 11, 23, 6, 30, 0, tzinfo=UTC)
REGION = "us-east-1"


def eml(name: str) -> bytes:
    return (EVENTS / name).read_bytes()


def ses_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text(encoding="utf-8"))
    return data


def mail(headers: str, body: str = "hello\n", *, charset: str = "utf-8") -> bytes:
    """A small raw mail: header lines (\\n separated), a blank line, the body."""
    head = headers.strip("\n") + "\n"
    if "content-type" not in headers.lower():
        head += f"Content-Type: text/plain; charset={charset}\n"
    return (head + "\n" + body).encode("utf-8")


# ---------------------------------------------------------------------------------------------
# SES notifications
# ---------------------------------------------------------------------------------------------


class TestSesNotification:
    def test_sns_action_utf8_content_becomes_raw_mime(self) -> None:
        data = ses_json("ses_sns_utf8.json")
        note = parse_ses_notification(data)
        assert isinstance(note, SesNotification)
        assert note.notification_type == "Received"
        assert note.action_type == "SNS"
        assert note.encoding == "UTF8"
        assert note.message_id == "o3s1vq7m1d2cfg5lm6ka0n2f1b7h2ce9t8ehr3g1"
        assert note.topic_arn == "arn:aws:sns:us-east-1:123456789012:kefu-inbound-email"
        assert note.raw_mime == data["content"].encode("utf-8")
        assert note.recipients == ("support@kefu.example.com",)
        assert note.destination == ("support@kefu.example.com",)
        assert note.source == "chen.jing@example.com"
        assert note.timestamp == "2026-11-23T02:14:05.123Z"
        assert (note.spam_verdict, note.virus_verdict, note.spf_verdict, note.dkim_verdict, note.dmarc_verdict) == (
            "PASS",
            "PASS",
            "PASS",
            "GRAY",
            "PASS",
        )
        assert not note.is_spam_or_virus
        assert note.bucket_name == "" and note.object_key == ""
        assert note.raw_mime is not None
        parsed = parse_mime(note.raw_mime)
        assert parsed.subject == "退货申请"
        assert parsed.text == "我想退货，商品尺码不合适。"
        assert parsed.from_name == "陈静"

    def test_sns_action_base64_content_is_byte_exact(self) -> None:
        note = parse_ses_notification(ses_json("ses_sns_base64.json"))
        assert note.encoding == "BASE64"
        assert note.raw_mime == eml("email_gb2312_qp.eml")
        assert note.raw_mime is not None
        assert parse_mime(note.raw_mime).from_address == "wang.zhe@example.cn"

    def test_s3_action_has_location_and_no_content(self) -> None:
        note = parse_ses_notification(ses_json("ses_s3.json"))
        assert note.action_type == "S3"
        assert note.bucket_name == "kefu-inbound-mail"
        assert note.object_key == "inbound/u7h2c4kq0m1bqc9l3v8e5s6n4a2d1f0g9h8j7k6l"
        assert note.raw_mime is None
        assert note.encoding == ""

    def test_accepts_the_message_string_and_the_sns_envelope(self) -> None:
        data = ses_json("ses_sns_utf8.json")
        as_text = json.dumps(data, ensure_ascii=False)
        envelope = {"Type": "Notification", "MessageId": "m-1", "Message": as_text}
        assert parse_ses_notification(as_text) == parse_ses_notification(data)
        assert parse_ses_notification(envelope) == parse_ses_notification(data)
        assert parse_ses_notification(json.dumps(envelope)) == parse_ses_notification(data)

    def test_utf8_content_with_a_lone_surrogate_does_not_raise(self) -> None:
        data = ses_json("ses_sns_utf8.json")
        data["content"] += "\ud800"
        raw = parse_ses_notification(data).raw_mime
        assert raw is not None and raw.endswith(b"?")

    def test_encoding_missing_defaults_to_utf8(self) -> None:
        data = ses_json("ses_sns_utf8.json")
        del data["receipt"]["action"]["encoding"]
        assert parse_ses_notification(data).encoding == "UTF8"

    @pytest.mark.parametrize(("spelling", "expected"), [("UTF-8", "UTF8"), ("utf8", "UTF8"), ("Base64", "BASE64")])
    def test_rule_configuration_spellings_are_accepted(self, spelling: str, expected: str) -> None:
        data = ses_json("ses_sns_base64.json" if expected == "BASE64" else "ses_sns_utf8.json")
        data["receipt"]["action"]["encoding"] = spelling
        assert parse_ses_notification(data).encoding == expected

    def test_base64_content_with_line_breaks_is_accepted(self) -> None:
        data = ses_json("ses_sns_base64.json")
        content = data["content"]
        data["content"] = "\r\n".join(content[i : i + 76] for i in range(0, len(content), 76))
        assert parse_ses_notification(data).raw_mime == eml("email_gb2312_qp.eml")

    @pytest.mark.parametrize("field", ["spamVerdict", "virusVerdict"])
    def test_spam_or_virus_fail(self, field: str) -> None:
        data = ses_json("ses_sns_utf8.json")
        data["receipt"][field] = {"status": "FAIL"}
        assert parse_ses_notification(data).is_spam_or_virus

    def test_missing_verdicts_are_empty(self) -> None:
        data = ses_json("ses_s3.json")
        del data["receipt"]["dmarcVerdict"]
        assert parse_ses_notification(data).dmarc_verdict == ""

    @staticmethod
    def _broken(mutate: str) -> Any:
        data: Any = ses_json("ses_sns_utf8.json")
        if mutate == "not-json":
            return "{not json"
        if mutate == "list":
            return [data]
        if mutate == "type":
            data["notificationType"] = "Bounce"
        elif mutate == "no-type":
            del data["notificationType"]
        elif mutate == "no-mail":
            del data["mail"]
        elif mutate == "no-receipt":
            data["receipt"] = "x"
        elif mutate == "no-action":
            del data["receipt"]["action"]
        elif mutate == "no-message-id":
            del data["mail"]["messageId"]
        elif mutate == "empty-message-id":
            data["mail"]["messageId"] = ""
        elif mutate == "message-id-type":
            data["mail"]["messageId"] = 42
        elif mutate == "lambda":
            data["receipt"]["action"] = {"type": "Lambda", "functionArn": "arn:aws:lambda:x", "invocationType": "Event"}
        elif mutate == "no-content":
            del data["content"]
        elif mutate == "encoding":
            data["receipt"]["action"]["encoding"] = "UTF16"
        elif mutate == "bad-base64":
            data["receipt"]["action"]["encoding"] = "BASE64"
            data["content"] = "not*base64!"
        elif mutate == "s3-no-bucket":
            data["receipt"]["action"] = {"type": "S3", "objectKey": "k"}
        elif mutate == "verdict":
            data["receipt"]["spamVerdict"] = "PASS"
        elif mutate == "destination":
            data["mail"]["destination"] = "support@kefu.example.com"
        return data

    @pytest.mark.parametrize(
        "mutate",
        [
            "not-json",
            "list",
            "type",
            "no-type",
            "no-mail",
            "no-receipt",
            "no-action",
            "no-message-id",
            "empty-message-id",
            "message-id-type",
            "lambda",
            "no-content",
            "encoding",
            "bad-base64",
            "s3-no-bucket",
            "verdict",
            "destination",
        ],
    )
    def test_malformed_notifications_raise_validation_error(self, mutate: str) -> None:
        with pytest.raises(ValidationError):
            parse_ses_notification(self._broken(mutate))


# ---------------------------------------------------------------------------------------------
# MIME parsing: fixtures
# ---------------------------------------------------------------------------------------------


class TestParseFixtures:
    def test_gb2312_subject_and_gbk_quoted_printable_body(self) -> None:
        p = parse_mime(eml("email_gb2312_qp.eml"))
        # 喆 is not in GB2312: the GB2312-labelled subject only decodes because gb18030 is used
        assert p.subject == "关于订单 SO-20261120-8812 的退款问题（王喆）"
        assert p.from_name == "王喆"
        assert p.from_address == "wang.zhe@example.cn"
        assert p.message_id == "20261123101401.3F2A1B@mail.example.cn"
        assert p.to == ["support@kefu.example.com"]
        assert p.date == datetime(2026, 11, 23, 10, 14, 1, tzinfo=timezone(timedelta(hours=8)))
        assert p.text.startswith("您好，\n\n我在 11 月 20 日下单的订单 SO-20261120-8812 一直没有收到退款")
        assert "订单金额：￥299.00" in p.text
        assert p.text.endswith("谢谢！\n王喆")
        assert "\r" not in p.text
        assert p.text_without_quote == p.text
        assert p.attachments == []
        assert p.headers["x-mailer"] == "Foxmail 7.2.25.228[cn]"
        assert not p.is_auto_reply and p.auto_reason == "" and not p.suppress_auto_response
        assert p.raw_sha256 == hashlib.sha256(eml("email_gb2312_qp.eml")).hexdigest()

    def test_html_only_mail_is_converted_to_text(self) -> None:
        p = parse_mime(eml("email_html_only.eml"))
        assert p.subject == "快递显示签收但未收到"
        assert p.from_name == "李娜"
        assert p.cc == ["li.na.backup@example.org", "zhang.san+orders@example.org"]
        assert p.to == ["support@kefu.example.com"]
        assert p.message_id == "CAH3x+9dK2=hTmlOnly-0001@mail.gmail.com"
        lines = p.text.split("\n")
        assert lines[0] == "您好，客服："
        assert "我的快递单号是 SF1234567890，显示已签收但我 没有收到。" in lines
        assert "请帮我核实：" in lines and "1. 签收人是谁" in lines and "2. 签收地址" in lines
        assert "- 订单号：SO-20261121-0042" in lines
        assert lines[-1] == "Tom & Jerry <家庭>"
        for dropped in ("alert", "color", "display", "不该出现的标题", "<p>", "&amp;"):
            assert dropped not in p.text
        assert "<p>" in p.html

    def test_multipart_with_rfc2231_chinese_attachment_and_inline_image(self) -> None:
        p = parse_mime(eml("email_attachment.eml"))
        assert p.subject == "发票和截图"
        assert p.text == "附件是发票，请查收。\n\n-- \n张三"  # text/plain preferred over the HTML
        assert "cid:logo.png@01DA1234" in p.html
        pdf, png = p.attachments
        assert pdf == EmailAttachment(
            filename="发票 2026-11.pdf",
            content_type="application/pdf",
            content=pdf.content,
            content_id="",
            inline=False,
        )
        assert pdf.content.startswith(b"%PDF-1.4") and pdf.content.endswith(b"%%EOF\n")
        assert png.filename == "截图.png"  # RFC 2047 inside the filename parameter
        assert png.content_type == "image/png"
        assert png.content.startswith(b"\x89PNG\r\n")
        assert png.content_id == "logo.png@01DA1234"  # exact, so cid: URLs still match
        assert png.inline is True

    def test_chinese_reply_threading_and_quote(self) -> None:
        p = parse_mime(eml("email_reply_zh.eml"))
        assert p.in_reply_to == "20261123060200.9f8e7d6c5b4a3f2e1d0c@kefu.example.com"
        assert p.references == [
            "20261123101401.3F2A1B@mail.example.cn",
            "20261123060200.9f8e7d6c5b4a3f2e1d0c@kefu.example.com",
        ]
        assert p.thread_refs == (
            "20261123060200.9f8e7d6c5b4a3f2e1d0c@kefu.example.com",
            "20261123101401.3F2A1B@mail.example.cn",
        )
        assert p.subject == "回复: Re: [EMAIL-20261123-000042] 关于订单的退款问题"
        assert "写道" in p.text and "> 您的退款已于今天处理" in p.text
        assert p.text_without_quote == "好的，我已经收到退款了，谢谢！\n顺便问一下，发票什么时候开？"
        assert p.from_name == "王喆"

    def test_outlook_reply_is_cut_at_the_separator(self) -> None:
        p = parse_mime(eml("email_reply_outlook.eml"))
        assert p.text_without_quote == (
            "Hi team,\n\nThe replacement arrived today but the charger is missing.\n"
            "Could you send one?\n\nThanks,\nAlice"
        )
        assert "发件人: Alice Chen" in p.text
        assert p.from_address == "alice.chen@contoso.example"
        assert p.message_id == "DM6PR11MB4500.namprd11.prod.outlook.com"
        assert p.references[0] == "SN6PR0501.first@namprd05.prod.outlook.com"
        assert p.date == datetime(2026, 11, 24, 11, 15, 42, tzinfo=UTC)

    def test_out_of_office_auto_reply(self) -> None:
        p = parse_mime(eml("email_auto_reply.eml"))
        assert p.is_auto_reply
        assert p.auto_reason == "auto-submitted:auto-replied"
        assert p.suppress_auto_response
        assert p.subject == "自动回复: 关于订单的退款问题"
        assert p.text == "我正在休假，11月30日回来，期间邮件不能及时回复。"

    def test_bounce_delivery_status_report(self) -> None:
        p = parse_mime(eml("email_bounce.eml"))
        assert p.is_auto_reply
        assert p.auto_reason == "bounce"
        assert p.bounced_recipients == ["nobody@example.net"]
        assert p.from_address == "mailer-daemon@mx.example.net"
        assert p.from_name == "Mail Delivery System"
        assert "550 5.1.1 User unknown" in p.text
        assert "must not become" not in p.text
        (original,) = p.attachments
        assert original.content_type == "message/rfc822"
        assert original.filename == "attachment-1.eml"
        assert b"Message-ID: <20261123060459.deadbeef@kefu.example.com>" in original.content

    def test_mail_without_message_id(self) -> None:
        raw = eml("email_no_message_id.eml")
        p = parse_mime(raw)
        assert p.message_id == ""
        assert p.raw_sha256 == hashlib.sha256(raw).hexdigest()
        assert p.text == "Order 77 has not shipped yet."
        assert p.from_name == "Bob"


# ---------------------------------------------------------------------------------------------
# MIME parsing: encodings and edge cases
# ---------------------------------------------------------------------------------------------


def _b(text: str, codec: str) -> str:
    return base64.b64encode(text.encode(codec)).decode()


class TestEncodings:
    @pytest.mark.parametrize(
        ("encoded", "expected"),
        [
            (f"=?GB2312?B?{_b('退款申请', 'gb2312')}?=", "退款申请"),
            (f"=?gb2312?B?{_b('王喆的退款', 'gbk')}?=", "王喆的退款"),  # mislabelled: GBK-only 喆
            ("=?GBK?Q?=CD=CB=BF=EE_=C9=EA=C7=EB?=", "退款 申请"),
            (f"=?gb18030?B?{_b('𠀀测试', 'gb18030')}?=", "𠀀测试"),
            ("=?utf-8?Q?=E9=80=80=E6=AC=BE?= now", "退款 now"),
            (f"=?UTF-8?B?{_b('退', 'utf-8')}?= =?UTF-8?B?{_b('款', 'utf-8')}?=", "退款"),  # RFC 2047 §6.2
            (f"=?big5?B?{_b('退款問題', 'big5')}?=", "退款問題"),
            (f"Re: =?utf-8?B?{_b('你好', 'utf-8')}?=", "Re: 你好"),
            ("plain ascii", "plain ascii"),
            ("=?x-unknown-cs?B?6YCA5qy+?=", "退款"),  # unknown label: guessed as UTF-8
        ],
    )
    def test_rfc2047_subjects(self, encoded: str, expected: str) -> None:
        raw = mail(f"From: a@example.com\nSubject: {encoded}\nMessage-ID: <1@x>")
        assert parse_mime(raw).subject == expected

    def test_folded_subject_is_unfolded(self) -> None:
        first, second = _b("第一段", "utf-8"), _b("第二段", "utf-8")
        raw = mail(f"From: a@example.com\nSubject: =?utf-8?B?{first}?=\n =?utf-8?B?{second}?=")
        assert parse_mime(raw).subject == "第一段第二段"

    def test_raw_8bit_utf8_headers(self) -> None:
        raw = "From: 张三 <zs@example.com>\nSubject: 未编码的主题\n\n正文\n".encode()
        p = parse_mime(raw)
        assert p.subject == "未编码的主题"
        assert p.from_address == "zs@example.com"
        assert p.text == "正文"

    def test_raw_8bit_gbk_subject_is_guessed(self) -> None:
        raw = b"From: a@example.com\nSubject: " + "退款".encode("gbk") + b"\n\nbody\n"
        assert parse_mime(raw).subject == "退款"

    @pytest.mark.parametrize(
        ("charset", "codec", "cte"),
        [
            ("utf-8", "utf-8", "base64"),
            ("gb2312", "gbk", "base64"),  # labelled gb2312, really GBK
            ("GBK", "gbk", "quoted-printable"),
            ("gb18030", "gb18030", "base64"),
            ("big5", "big5", "base64"),
        ],
    )
    def test_body_charsets_and_transfer_encodings(self, charset: str, codec: str, cte: str) -> None:
        text = "退款問題" if codec == "big5" else "退款问题：王喆"  # 喆 exists in GBK/GB18030 only
        data = text.encode(codec)
        body = base64.b64encode(data).decode() if cte == "base64" else quopri.encodestring(data).decode()
        raw = (
            f"From: a@example.com\nContent-Type: text/plain; charset={charset}\n"
            f"Content-Transfer-Encoding: {cte}\n\n{body}\n"
        ).encode()
        assert parse_mime(raw).text == text

    def test_undecodable_bytes_are_replaced_not_raised(self) -> None:
        raw = (
            b"From: a@example.com\nContent-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: 8bit\n\nok \xff\xfe end\n"
        )
        p = parse_mime(raw)
        assert p.text.startswith("ok ") and p.text.endswith(" end")
        assert "\ufffd" in p.text

    def test_broken_base64_body_does_not_raise(self) -> None:
        raw = (
            b"From: a@example.com\nContent-Type: text/plain; charset=utf-8\n"
            b"Content-Transfer-Encoding: base64\n\n5L2g5aW9!!!@@\n"
        )
        assert isinstance(parse_mime(raw).text, str)

    def test_unlabelled_8bit_body_is_guessed(self) -> None:
        raw = b"From: a@example.com\n\n" + "没有字符集".encode("gb18030") + b"\n"
        assert parse_mime(raw).text == "没有字符集"

    def test_unknown_charset_falls_back(self) -> None:
        raw = b"From: a@example.com\nContent-Type: text/plain; charset=x-martian\n\n" + "你好".encode() + b"\n"
        assert parse_mime(raw).text == "你好"

    def test_decode_bytes_never_raises(self) -> None:
        assert decode_bytes(b"\xff\xff\xff", "utf-8").count("\ufffd") >= 1
        assert decode_bytes(b"\xff\xff", "no-such-codec").count("\ufffd") >= 1
        assert decode_bytes("中".encode("gbk"), "GB_2312-80") == "中"
        assert decode_bytes(b"abc", None) == "abc"

    def test_decode_rfc2047_none_and_plain(self) -> None:
        assert decode_rfc2047(None) == ""
        assert decode_rfc2047(make_header(decode_header("=?utf-8?B?5L2g?="))) == "你"


class TestHeaders:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("<AbC.1@Mail.Example.COM>", "AbC.1@mail.example.com"),
            ("  <x@y>  ", "x@y"),
            ("bare@Host", "bare@host"),
            ("<x@y> (comment)", "x@y"),
            ("no-at-sign", "no-at-sign"),
        ],
    )
    def test_normalize_message_id(self, value: str, expected: str) -> None:
        assert normalize_message_id(value) == expected

    def test_in_reply_to_with_trailing_comment_and_references_without_brackets(self) -> None:
        raw = mail(
            "From: a@example.com\nMessage-ID: <m@x>\n"
            "In-Reply-To: <Parent@Host.Example> (Zhang's message of Mon, 23 Nov 2026)\n"
            "References: root@host.example parent@host.example"
        )
        p = parse_mime(raw)
        assert p.in_reply_to == "Parent@host.example"
        assert p.references == ["root@host.example", "parent@host.example"]

    def test_duplicate_references_are_dropped_in_order(self) -> None:
        p = parse_mime(mail("From: a@example.com\nIn-Reply-To: <b@x>\nReferences: <a@x> <b@x> <a@x>"))
        assert p.references == ["a@x", "b@x"]
        assert p.thread_refs == ("b@x", "a@x")

    def test_bad_date_is_none(self) -> None:
        assert parse_mime(mail("From: a@example.com\nDate: not a date")).date is None
        assert parse_mime(mail("From: a@example.com")).date is None

    def test_sender_used_when_from_missing(self) -> None:
        p = parse_mime(mail('Sender: "Ops" <OPS@Example.com>'))
        assert (p.from_name, p.from_address) == ("Ops", "ops@example.com")

    def test_reply_to_and_multiple_to(self) -> None:
        headers = 'From: a@example.com\nTo: x@e.com, "Y" <Y@E.com>, undisclosed-recipients:;\nReply-To: r@e.com'
        p = parse_mime(mail(headers))
        assert p.to == ["x@e.com", "y@e.com"]
        assert p.reply_to == ["r@e.com"]

    @pytest.mark.parametrize(
        ("address", "expected"),
        [
            ("  Zhang.San@Example.COM ", "zhang.san@example.com"),
            ('"张三" <Zhang.San+VIP@Example.com>', "zhang.san+vip@example.com"),
            ("<a@b.c>", "a@b.c"),
            ("a+tag@b.c", "a+tag@b.c"),
        ],
    )
    def test_normalize_email(self, address: str, expected: str) -> None:
        assert normalize_email(address) == expected


class TestAttachments:
    def test_filename_path_traversal_is_neutralised_and_missing_names_filled(self) -> None:
        raw = (
            b'From: a@example.com\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="b"\n\n'
            b"--b\nContent-Type: text/plain\n\nsee files\n"
            b"--b\nContent-Type: application/octet-stream\n"
            b'Content-Disposition: attachment; filename="../../etc/passwd"\n\nroot\n'
            b"--b\nContent-Type: application/zip\nContent-Disposition: attachment\n"
            b"Content-Transfer-Encoding: base64\n\nUEsDBA==\n"
            b"--b\nContent-Type: text/plain; name=notes.txt\n\nnot the body\n"
            b"--b--\n"
        )
        p = parse_mime(raw)
        assert p.text == "see files"
        assert [a.filename for a in p.attachments] == ["passwd", "attachment-2", "notes.txt"]
        assert p.attachments[1].content == b"PK\x03\x04"
        assert p.attachments[2].content.strip() == b"not the body"

    def test_gb2312_rfc2047_filename(self) -> None:
        name = f"=?GB2312?B?{_b('合同.docx', 'gb2312')}?="
        raw = (
            'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nhi\n"
            f'--b\nContent-Type: application/msword; name="{name}"\n'
            f'Content-Disposition: attachment; filename="{name}"\n\nx\n'
            "--b--\n"
        ).encode()
        assert parse_mime(raw).attachments[0].filename == "合同.docx"


# ---------------------------------------------------------------------------------------------
# Auto-replies
# ---------------------------------------------------------------------------------------------


    @pytest.mark.parametrize("codec", ["utf-8", "gbk"])
    def test_raw_8bit_filename(self, codec: str) -> None:
        raw = (
            b'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"\n\n'
            b"--b\nContent-Type: text/plain\n\nhi\n"
            b'--b\nContent-Type: application/pdf\nContent-Disposition: attachment; filename="'
            + "合同.pdf".encode(codec)
            + b'"\n\nx\n--b--\n'
        )
        assert parse_mime(raw).attachments[0].filename == "合同.pdf"


class TestAutoReply:
    @pytest.mark.parametrize(
        ("headers", "reason"),
        [
            ("Auto-Submitted: auto-generated", "auto-submitted:auto-generated"),
            ("Auto-Submitted: Auto-Replied; owner-email=x@y", "auto-submitted:auto-replied"),
            ("Auto-Submitted: auto-notified", "auto-submitted:auto-notified"),
            ("X-Autoreply: yes", "x-autoreply"),
            ("X-Autorespond: on vacation", "x-autorespond"),
            ("Precedence: bulk", "precedence:bulk"),
            ("Precedence: junk", "precedence:junk"),
            ("Precedence: list", "precedence:list"),
            ("Precedence: auto_reply", "precedence:auto_reply"),
            ("Return-Path: <>", "null-return-path"),
            ("Subject: Automatic reply: Your ticket", "subject"),
            ("Subject: Out of Office: back Monday", "subject"),
            (f"Subject: =?utf-8?B?{_b('自动回复：您的来信已收到', 'utf-8')}?=", "subject"),
            ("Subject: Undeliverable: hello", "subject"),
        ],
    )
    def test_markers(self, headers: str, reason: str) -> None:
        p = parse_mime(mail(f"From: someone@example.com\n{headers}"))
        assert p.is_auto_reply
        assert p.auto_reason == reason
        assert p.suppress_auto_response

    @pytest.mark.parametrize("sender", ["MAILER-DAEMON@mx.example.com", "postmaster@example.com"])
    def test_daemon_senders(self, sender: str) -> None:
        p = parse_mime(mail(f"From: {sender}\nSubject: failure notice"))
        assert p.auto_reason == "mailer-daemon"

    @pytest.mark.parametrize(
        "headers",
        [
            "Auto-Submitted: no",
            "Precedence: first-class",
            "Subject: Re: is the office out of stock?",
            "Return-Path: <a@example.com>",
        ],
    )
    def test_human_mail_is_not_auto(self, headers: str) -> None:
        p = parse_mime(mail(f"From: someone@example.com\n{headers}"))
        assert not p.is_auto_reply and p.auto_reason == ""
        assert not p.suppress_auto_response

    @pytest.mark.parametrize("value", ["All", "OOF, AutoReply", "DR, RN, NRN, OOF, AutoReply"])
    def test_x_auto_response_suppress_is_a_request_not_a_marker(self, value: str) -> None:
        p = parse_mime(mail(f"From: someone@example.com\nX-Auto-Response-Suppress: {value}"))
        assert not p.is_auto_reply
        assert p.suppress_auto_response

    def test_x_auto_response_suppress_for_receipts_only_does_not_suppress(self) -> None:
        p = parse_mime(mail("From: someone@example.com\nX-Auto-Response-Suppress: DR, RN"))
        assert not p.is_auto_reply and not p.suppress_auto_response

    def test_list_mail_suppresses_auto_response(self) -> None:
        p = parse_mime(mail("From: news@example.com\nList-Id: <news.example.com>"))
        assert not p.is_auto_reply and p.suppress_auto_response

    def test_read_receipt_report(self) -> None:
        raw = (
            b"From: a@example.com\nContent-Type: multipart/report; report-type=disposition-notification; boundary=b\n\n"
            b"--b\nContent-Type: text/plain\n\nread\n--b\nContent-Type: message/disposition-notification\n\n"
            b"Final-Recipient: rfc822; a@example.com\nDisposition: manual-action/MDN-sent-manually; displayed\n--b--\n"
        )
        assert parse_mime(raw).auto_reason == "read-receipt"


# ---------------------------------------------------------------------------------------------
# Quote stripping and HTML
# ---------------------------------------------------------------------------------------------


class TestStripQuoted:
    @pytest.mark.parametrize(
        "history",
        [
            "On Mon, Nov 23, 2026 at 2:02 PM Kefu Support <support@kefu.example.com> wrote:\n> old",
            "On Mon, Nov 23, 2026 at 2:02 PM Kefu Support <support@kefu.example.\ncom> wrote:\n\n> old",
            "-----Original Message-----\nFrom: x\nold",
            "------------------ 原始邮件 ------------------\n发件人: \"客服\"<support@kefu.example.com>;\n旧内容",
            "客服 <support@kefu.example.com> 于2026年11月23日周一 14:02写道：\n> 旧内容",
            "在 2026/11/23 14:02, 客服 写道:\n> 旧内容",
            "发件人: 客服 <support@kefu.example.com>\n发送时间: 2026年11月23日 14:02\n收件人: 我\n主题: 退款\n\n旧内容",
            "From: Kefu <support@kefu.example.com>\nSent: Monday\nTo: me\nSubject: hi\n\nold",
            "________________________________\nFrom: Kefu <support@kefu.example.com>\nDate: Monday\nSubject: hi\nold",
        ],
    )
    def test_history_is_cut(self, history: str) -> None:
        text = f"谢谢，已经收到。\nThanks!\n\n{history}\nmore old text"
        assert strip_quoted(text) == "谢谢，已经收到。\nThanks!"

    def test_inline_quoted_lines_are_dropped(self) -> None:
        text = "> What is your order number?\n12345\n> And your phone?\n13800138000\r\n"
        assert strip_quoted(text) == "12345\n13800138000"

    def test_a_lone_from_line_is_kept(self) -> None:
        text = "From: my experience this is broken.\nPlease fix."
        assert strip_quoted(text) == text

    def test_everything_quoted_gives_empty_and_inbound_falls_back(self) -> None:
        raw = mail("From: a@example.com\nMessage-ID: <q@x>", "On Mon, Nov 23, 2026 A <a@x> wrote:\n> only quote\n")
        p = parse_mime(raw)
        assert p.text_without_quote == ""
        assert to_inbound(p, NOW).text == p.text


class TestHtmlToText:
    def test_blockquote_becomes_quoted_lines(self) -> None:
        html = (
            "<div dir='ltr'>New answer<br></div><div class='gmail_quote'>"
            "<div>On Mon, Nov 23, 2026 at 2:02 PM Kefu &lt;support@kefu.example.com&gt; wrote:<br></div>"
            "<blockquote>old <b>text</b><br>line two</blockquote></div>"
        )
        text = html_to_text(html)
        assert "> old text\n> line two" in text
        assert strip_quoted(text) == "New answer"

    def test_pre_keeps_line_breaks_and_tables_break_rows(self) -> None:
        html = "<pre>a  b\nc</pre><table><tr><td>x</td><td>y</td></tr><tr><td>z</td></tr></table><p/>end"
        text = html_to_text(html)
        assert "a  b\nc" in text
        assert "x y" in text.replace("\n", " ") and text.endswith("end")

    def test_block_after_inline_text_starts_a_line(self) -> None:
        assert html_to_text("a<div>b</div>c<p>d") == "a\nb\nc\nd"

    def test_raw_8bit_in_reply_to(self) -> None:
        raw = "From: a@example.com\nIn-Reply-To: <你好@Example.com>\n\nhi\n".encode()
        assert parse_mime(raw).in_reply_to == "你好@example.com"

    def test_script_and_style_are_dropped(self) -> None:
        assert html_to_text("<style>a{}</style><script>x()</script><p>只要这个</p>") == "只要这个"


# ---------------------------------------------------------------------------------------------
# Ticket ids and InboundMessage
# ---------------------------------------------------------------------------------------------


class TestTicketIdFromSubject:
    @pytest.mark.parametrize(
        ("subject", "expected"),
        [
            ("Re: [WECHAT-20261123-000042] 退款", "WECHAT-20261123-000042"),
            ("回复：[EMAIL-20261120-000007]", "EMAIL-20261120-000007"),
            ("WECHAT-20261123-000042 without brackets", ""),
            ("[wechat-20261123-000042] lower case", ""),
            ("[WECHAT-2026112-000042] short date", ""),
            ("", ""),
        ],
    )
    def test_extract(self, subject: str, expected: str) -> None:
        assert ticket_id_from_subject(subject) == expected


class TestToInbound:
    def test_fields(self) -> None:
        p = parse_mime(eml("email_reply_zh.eml"))
        urls = [("s3://kefu-attachments/email/a/发票.pdf", "file", "发票.pdf")]
        msg = to_inbound(p, NOW, urls)
        assert isinstance(msg, InboundMessage)
        assert msg.channel == "EMAIL" and msg.source == "email"
        assert msg.dedupe_key == "email:tencent_5A2F@qq.com"
        assert msg.customer.external_id == "wang.zhe@example.cn"
        assert msg.customer.email == "wang.zhe@example.cn"
        assert msg.customer.name == "王喆"
        assert msg.text == "好的，我已经收到退款了，谢谢！\n顺便问一下，发票什么时候开？"
        assert msg.subject == p.subject
        assert msg.received_at == NOW
        assert msg.thread_refs == p.thread_refs
        assert msg.attachments == (Attachment(url=urls[0][0], type="file", name="发票.pdf"),)
        assert msg.kind == "message" and msg.event == ""
        assert msg.metadata["message_id"] == "tencent_5A2F@qq.com"
        assert msg.metadata["to"] == ["support@kefu.example.com"]
        assert msg.metadata["cc"] == []
        # the subject tag is recorded as a hint only: it must never join a ticket by itself
        assert msg.metadata["subject_ticket_id"] == "EMAIL-20261123-000042"
        assert msg.ticket_hint == ""

    def test_without_message_id_dedupes_on_raw_hash(self) -> None:
        raw = eml("email_no_message_id.eml")
        msg = to_inbound(parse_mime(raw), NOW)
        assert msg.dedupe_key == "email:sha256:" + hashlib.sha256(raw).hexdigest()
        assert msg.thread_refs == ()
        assert to_inbound(parse_mime(raw), NOW).dedupe_key == msg.dedupe_key

    def test_auto_reply_and_bounce_are_events(self) -> None:
        auto = to_inbound(parse_mime(eml("email_auto_reply.eml")), NOW)
        assert (auto.kind, auto.event) == ("event", "auto_reply")
        assert auto.metadata["auto_reason"] == "auto-submitted:auto-replied"
        bounce = to_inbound(parse_mime(eml("email_bounce.eml")), NOW)
        assert (bounce.kind, bounce.event) == ("event", "bounce")

    def test_no_from_address_is_invalid(self) -> None:
        with pytest.raises(ValidationError):
            to_inbound(parse_mime(b"Subject: nobody\n\nhi\n"), NOW)


# ---------------------------------------------------------------------------------------------
# Outbound
# ---------------------------------------------------------------------------------------------


def _reply(**overrides: Any) -> OutboundEmail:
    kwargs: dict[str, Any] = {
        "from_address": "support@kefu.example.com",
        "from_name": "Kefu 客服",
        "to_address": "Wang.Zhe@Example.CN",
        "subject": "回复: Re: [EMAIL-20261123-000042] 关于订单的退款问题",
        "text": "王先生您好，\n\n发票将在 3 个工作日内开具。\n\nKefu 客服",
        "ticket_id": "EMAIL-20261123-000042",
        "in_reply_to": "<tencent_5A2F@qq.com>",
        "references": ["<20261123101401.3F2A1B@Mail.Example.CN>", "20261123060200.9f8e@kefu.example.com"],
        "domain": "kefu.example.com",
        "now": NOW,
    }
    kwargs.update(overrides)
    return build_reply(**kwargs)


class TestBuildReply:
    @pytest.mark.parametrize(
        ("subject", "expected"),
        [
            ("退款", "Re: [T-20261123-000001] 退款"),
            ("Re: Re: 退款", "Re: [T-20261123-000001] 退款"),
            ("RE: [T-20261123-000001] Re: 退款", "Re: [T-20261123-000001] 退款"),
            ("[T-20261123-000001] 退款", "Re: [T-20261123-000001] 退款"),
            ("回复：答复: Re[2]: 退款", "Re: [T-20261123-000001] 退款"),
            ("Re: 退款 [T-20261123-000001]", "Re: [T-20261123-000001] 退款"),
        ],
    )
    def test_reply_subject(self, subject: str, expected: str) -> None:
        assert reply_subject(subject, "T-20261123-000001", is_reply=True) == expected

    def test_reply_subject_without_ticket_or_reply(self) -> None:
        assert reply_subject("Re: 退款", "", is_reply=False) == "退款"

    def test_headers(self) -> None:
        out = _reply()
        msg = message_from_bytes(out.raw)
        assert out.raw.isascii()  # every non-ASCII header is RFC 2047-encoded, bodies base64
        assert str(make_header(decode_header(msg["Subject"]))) == "Re: [EMAIL-20261123-000042] 关于订单的退款问题"
        assert "=?utf-8?" in msg["Subject"]
        assert msg["Message-ID"] == f"<{out.message_id}>"
        assert out.message_id.endswith("@kefu.example.com") and out.message_id.startswith("20261123063000.")
        assert msg["In-Reply-To"] == "<tencent_5A2F@qq.com>"
        assert msg["References"].split() == [
            "<20261123101401.3F2A1B@mail.example.cn>",
            "<20261123060200.9f8e@kefu.example.com>",
            "<tencent_5A2F@qq.com>",
        ]
        assert out.references[-1] == out.in_reply_to == "tencent_5A2F@qq.com"
        assert msg["Date"] == "Mon, 23 Nov 2026 06:30:00 +0000"
        assert msg["To"] == "wang.zhe@example.cn"
        assert "support@kefu.example.com" in msg["From"]
        assert msg["Auto-Submitted"] is None and msg["X-Auto-Response-Suppress"] is None
        assert msg.get_content_type() == "text/plain"
        assert msg.get_content_charset() == "utf-8"
        assert msg["MIME-Version"] == "1.0"
        assert b"\r\n" in out.raw

    def test_message_ids_are_unique(self) -> None:
        assert _reply().message_id != _reply().message_id

    def test_parent_moves_to_the_end_of_references(self) -> None:
        out = _reply(references=["<p@x>", "<a@x>"], in_reply_to="p@x")
        assert out.references == ("a@x", "p@x")

    def test_system_notice_is_auto_submitted(self) -> None:
        msg = message_from_bytes(_reply(auto=True).raw)
        assert msg["Auto-Submitted"] == "auto-replied"
        assert msg["X-Auto-Response-Suppress"] == "All"
        fresh = message_from_bytes(_reply(auto=True, in_reply_to="", references=[]).raw)
        assert fresh["Auto-Submitted"] == "auto-generated"
        assert fresh["In-Reply-To"] is None and fresh["References"] is None
        assert str(make_header(decode_header(fresh["Subject"]))) == "[EMAIL-20261123-000042] 关于订单的退款问题"

    def test_html_alternative(self) -> None:
        out = _reply(html="<p>王先生您好</p>")
        msg = message_from_bytes(out.raw)
        assert msg.get_content_type() == "multipart/alternative"
        types = [part.get_content_type() for part in msg.walk()]
        assert types == ["multipart/alternative", "text/plain", "text/html"]
        assert parse_mime(out.raw).text.startswith("王先生您好，")

    def test_ascii_body_uses_quoted_printable(self) -> None:
        msg = message_from_bytes(_reply(text="Hello Alice").raw)
        assert msg["Content-Transfer-Encoding"] == "quoted-printable"

    @pytest.mark.parametrize(
        "overrides",
        [
            {"now": datetime(2026, 11, 23, 6, 30)},
            {"domain": ""},
            {"domain": "user@kefu.example.com"},
            {"to_address": "not-an-address"},
        ],
    )
    def test_invalid_input(self, overrides: dict[str, Any]) -> None:
        with pytest.raises(ValidationError):
            _reply(**overrides)


class TestRoundTrip:
    def test_build_then_parse_keeps_threading_and_text(self) -> None:
        out = _reply()
        p = parse_mime(out.raw)
        assert p.message_id == out.message_id
        assert p.in_reply_to == out.in_reply_to
        assert p.references == list(out.references)
        assert p.subject == out.subject
        assert p.text == "王先生您好，\n\n发票将在 3 个工作日内开具。\n\nKefu 客服"
        assert p.text_without_quote == p.text
        assert (p.from_name, p.from_address) == ("Kefu 客服", "support@kefu.example.com")
        assert p.to == ["wang.zhe@example.cn"]
        assert p.date == NOW
        assert not p.is_auto_reply

    def test_reply_to_a_parsed_mail_continues_its_thread(self) -> None:
        incoming = parse_mime(eml("email_reply_zh.eml"))
        out = _reply(in_reply_to=incoming.message_id, references=incoming.references, subject=incoming.subject)
        back = parse_mime(out.raw)
        assert back.references == [*incoming.references, incoming.message_id]
        assert back.in_reply_to == incoming.message_id
        assert ticket_id_from_subject(back.subject) == "EMAIL-20261123-000042"

    def test_auto_notice_round_trips_as_auto_reply(self) -> None:
        p = parse_mime(_reply(auto=True).raw)
        assert p.is_auto_reply and p.auto_reason == "auto-submitted:auto-replied"


# ---------------------------------------------------------------------------------------------
# Sending through SES
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(name, value)


class TestSesSender:
    def test_send_raw_email_through_moto(self, aws_env: None) -> None:
        from moto.core.models import DEFAULT_ACCOUNT_ID
        from moto.ses.models import ses_backends

        calls: list[int] = []

        with mock_aws():

            def factory() -> Any:
                calls.append(1)
                return boto3.client("ses", region_name=REGION)

            boto3.client("ses", region_name=REGION).verify_email_identity(EmailAddress="support@kefu.example.com")
            sender = SesSender(factory)
            assert calls == []  # no client until the first send
            out = _reply()
            ses_id = sender.send(out, source="support@kefu.example.com", destinations=["wang.zhe@example.cn"])
            sender.send(out, source="support@kefu.example.com", destinations=["wang.zhe@example.cn"])
            assert calls == [1]  # built once, reused
            sent = ses_backends[DEFAULT_ACCOUNT_ID][REGION].sent_messages
            assert next(m.id for m in sent) == ses_id
            assert sent[0].source == "support@kefu.example.com"
            assert "wang.zhe@example.cn" in sent[0].destinations
            stored = sent[0].raw_data
            stored_bytes = stored.encode() if isinstance(stored, str) else stored
            assert parse_mime(stored_bytes).message_id == out.message_id
            assert parse_mime(stored_bytes).in_reply_to == "tencent_5A2F@qq.com"

    def test_unverified_source_is_rejected_permanently(self, aws_env: None) -> None:
        with mock_aws():
            sender = SesSender(lambda: boto3.client("ses", region_name=REGION))
            with pytest.raises(SendError) as info:
                sender.send(_reply(), source="support@kefu.example.com", destinations=["wang.zhe@example.cn"])
            assert info.value.retryable is False
            assert "MessageRejected" in str(info.value)

    @pytest.mark.parametrize(
        ("code", "status", "retryable"),
        [
            ("Throttling", 400, True),
            ("ServiceUnavailable", 503, True),
            ("MessageRejected", 400, False),
            ("MailFromDomainNotVerifiedException", 400, False),
            ("MailFromDomainNotVerified", 400, False),
            ("SomethingNew", 500, True),
            ("SomethingNew", 400, False),
        ],
    )
    def test_client_errors_map_to_send_errors(self, aws_env: None, code: str, status: int, retryable: bool) -> None:
        client = boto3.client("ses", region_name=REGION)
        stubber = Stubber(client)
        stubber.add_client_error(
            "send_raw_email", service_error_code=code, service_message="nope", http_status_code=status
        )
        with stubber, pytest.raises(SendError) as info:
            SesSender(lambda: client).send(_reply(), source="support@kefu.example.com", destinations=["a@b.c"])
        assert info.value.retryable is retryable
        assert code in str(info.value)

    def test_connection_errors_are_retryable(self) -> None:
        class Unreachable:
            def send_raw_email(self, **_: Any) -> dict[str, Any]:
                raise EndpointConnectionError(endpoint_url="https://email.us-east-1.amazonaws.com")

        with pytest.raises(SendError) as info:
            SesSender(Unreachable).send(_reply(), source="support@kefu.example.com", destinations=["a@b.c"])
        assert info.value.retryable is True

    def test_needs_destinations(self) -> None:
        with pytest.raises(ValidationError):
            SesSender(lambda: None).send(_reply(), source="support@kefu.example.com", destinations=[])


def test_parsed_email_is_the_public_shape() -> None:
    p = parse_mime(eml("email_no_message_id.eml"))
    assert isinstance(p, ParsedEmail)
    assert p.html == "" and p.cc == [] and p.bounced_recipients == []
