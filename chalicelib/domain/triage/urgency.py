"""Urgency detection (紧急): safety, legal and media threats, explicit urgency, repeat and VIP complaints."""
from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ValidationError
from ..ticket import CATEGORIES, TIERS
from .classifier import is_negated, normalise

# Every reason code detect_urgency can report, in the order it reports them.
REASONS = (
    "safety",
    "legal",
    "media",
    "major_loss",
    "explicit",
    "repeat_complaint",
    "vip_complaint",
    "channel_flag",
)
# Reasons that on their own make a ticket P0 (see priority.py).
CRITICAL_REASONS = ("safety", "legal", "media")
# A customer with at least this many complaints in the caller's window is escalated.
REPEAT_COMPLAINT_THRESHOLD = 2

# reason → keywords: Chinese substrings or English regexes (lower case; text is NFKC-normalised and lowered).
# A longer keyword claims its span, so "不着急" is one negated 着急 rather than a bare 急.
URGENCY_KEYWORDS: dict[str, tuple[str, ...]] = {
    "safety": (
        "起火", "着火", "失火", "火灾", "冒烟", "冒火", "火花", "自燃", "烧焦", "焦味", "短路", "漏电", "触电", "被电",
        "爆炸", "炸了", "受伤", "摔伤", "烫伤", "烧伤", "割伤", "砸伤", "流血", "住院", "送医", "急诊", "燃气泄漏",
        "煤气泄漏", "漏气", "煤气味", "燃气味", "中毒", "窒息", "下坠", "坠落", "被困", "困在电梯", "安全隐患",
        "有危险", "很危险",
        r"\bfire\b", r"\bon fire\b", r"\bsmok(?:e|ing|y)\b", r"\bsparks?\b", r"\belectric shock\b", r"\bshocked\b",
        r"\belectrocut\w*", r"\bexplo(?:de|ded|sion)\b", r"\binjur\w*", r"\bhurt\b", r"\bgot burn(?:ed|t)\b",
        r"\bburns\b", r"\bgas (?:leak|smell)\w*", r"\bsmell of gas\b", r"\bcarbon monoxide\b", r"\bpoison\w*",
        r"\bhospital\w*", r"\btrapped\b", r"\bflood\w*", r"\bchok(?:e|ed|ing)\b", r"\bhazard\w*", r"\bdangerous\b",
        r"\bunsafe\b", r"\bsafety (?:risk|issue|hazard)\b",
    ),
    "legal": (
        "律师", "起诉", "法院", "诉讼", "告你们", "法律途径", "法律责任", "12315", "消协", "消费者协会", "工商局",
        "工商部门", "市场监管", "仲裁", "报警",
        r"\blawyers?\b", r"\battorney\b", r"\bsu(?:e|ing)\b", r"\blawsuit\b", r"\bcourt\b", r"\blegal action\b",
        r"\bconsumer (?:protection|council|association)\b", r"\btrading standards\b", r"\bpolice\b", r"\bombudsman\b",
    ),
    "media": (
        "曝光", "媒体", "记者", "电视台", "报社", "上热搜", "舆论", "发微博", "微博上", "发抖音", "抖音上", "小红书上",
        "发到网上", "发网上", "网上说说", "评评理",
        r"\bjournalists?\b", r"\breporters?\b", r"\bthe (?:press|news|media)\b", r"\bnews outlets?\b",
        r"\bnewspapers?\b", r"\bsocial media\b", r"\bgo(?:ing)? public\b", r"\btwitter\b", r"\btweet\w*",
        r"\bgo(?:es|ing)? viral\b",
    ),
    "major_loss": (
        "停产", "停工", "停线", "产线停", "生产线停", "重大损失", "巨大损失", "损失惨重",
        r"\bproduction (?:line )?(?:is )?(?:down|stopped|halted)\b", r"\bline is down\b", r"\bhuge loss\w*",
    ),
    "explicit": (
        "十万火急", "紧急", "着急", "加急", "急需", "急用", "很急", "急",
        r"\burgent\w*", r"\basap\b", r"\bemergency\b", r"\bimmediately\b", r"\bright away\b",
    ),
}


@dataclass(frozen=True)
class Urgency:
    """Whether a ticket is urgent (紧急, goes to the duty manager), why (reason codes) and the words that said so."""

    urgent: bool
    reasons: tuple[str, ...] = ()
    evidence: tuple[str, ...] = ()


def _compile(keywords: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    ordered = sorted(keywords, key=len, reverse=True)
    return tuple(
        re.compile(k if any(ch in k for ch in "\\[](){}|?*+") else re.escape(k)) for k in ordered
    )


_COMPILED: dict[str, tuple[re.Pattern[str], ...]] = {r: _compile(k) for r, k in URGENCY_KEYWORDS.items()}


def keyword_reasons(text: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Reason codes found in the text (negated mentions such as 不急 / "not urgent" ignored) and their words."""
    norm = normalise(text)
    reasons: list[str] = []
    evidence: list[str] = []
    for reason, patterns in _COMPILED.items():
        claimed: list[tuple[int, int]] = []
        for pattern in patterns:
            for m in pattern.finditer(norm):
                if any(s <= m.start() and m.end() <= e for s, e in claimed):
                    continue
                claimed.append((m.start(), m.end()))
                if is_negated(norm, m.start()):
                    continue
                if reason not in reasons:
                    reasons.append(reason)
                evidence.append(m.group(0))
    return tuple(reasons), tuple(dict.fromkeys(evidence))


def detect_urgency(
    text: str,
    *,
    category: str,
    tier: str,
    channel_flag: bool = False,
    recent_complaints: int = 0,
) -> Urgency:
    """Is this ticket urgent? `recent_complaints` is the customer's complaint count in the caller's window."""
    if category not in CATEGORIES:
        raise ValidationError(f"unknown category {category!r}")
    if tier not in TIERS:
        raise ValidationError(f"unknown tier {tier!r}")
    found, evidence = keyword_reasons(text or "")
    reasons = set(found)
    if recent_complaints >= REPEAT_COMPLAINT_THRESHOLD:
        reasons.add("repeat_complaint")
    if tier == "vip" and category == "complaint":
        reasons.add("vip_complaint")
    if channel_flag:
        reasons.add("channel_flag")
    ordered = tuple(r for r in REASONS if r in reasons)
    return Urgency(urgent=bool(ordered), reasons=ordered, evidence=evidence)
