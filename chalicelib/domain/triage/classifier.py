"""Ticket category classifier: channel hint, weighted keyword rules and a multinomial naive Bayes."""
from __future__ import annotations

import json
import logging
import math
import re
import sys
import tempfile
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ValidationError
from ..ticket import CATEGORIES

SOURCES = ("hint", "rules", "model")
# How far (log-odds) an explicit complaint is put above after_sales when both are present.
EXPLICIT_MARGIN = 1.0

# Channel hints (IVR menu choice, web-form field) that name a category, besides the ids themselves.
HINT_ALIASES: dict[str, str] = {
    "咨询": "consultation",
    "投诉": "complaint",
    "建议": "suggestion",
    "售后": "after_sales",
    "aftersales": "after_sales",
    "after-sales": "after_sales",
    "inquiry": "consultation",
    "enquiry": "consultation",
}


@dataclass(frozen=True)
class KeywordRule:
    """A keyword (Chinese substring or English regex) that adds `weight` (log-odds) to a category."""

    pattern: str
    category: str
    weight: float
    negatable: bool = False  # "不是投诉" / "not complaining" cancel it
    explicit: bool = False  # an explicit complaint: complaint then outranks after_sales


def _rules(
    category: str, weight: float, *patterns: str, negatable: bool = False, explicit: bool = False
) -> tuple[KeywordRule, ...]:
    return tuple(KeywordRule(p, category, weight, negatable, explicit) for p in patterns)


# Weights are log-odds added to the model's score. An explicit complaint (投诉, complain) is weighted so
# that it outranks a repair/refund request in the same message.
KEYWORD_RULES: tuple[KeywordRule, ...] = (
    *_rules(
        "complaint", 6.0, "投诉", "差评", "举报", r"\bcomplain\w*", r"\bformal complaint", negatable=True, explicit=True
    ),
    *_rules(
        "complaint", 3.0,
        "欺骗", "欺诈", "骗人", "骗子", "被骗", "坑人", "忽悠", "霸王条款", "虚假宣传", "态度恶劣", "态度差",
        "态度很差", "态度极差", "不满", "失望", "气愤", "愤怒", "生气", "恶心", "垃圾", "无良", "乱收费", "推诿",
        "踢皮球", "敷衍", "没人管", "没人理", "不理人", "爱答不理", "素质", "辱骂", "骂人", "骂我", "假货",
        "离谱", "太差", "差劲", "讨个说法", "给个说法", "交代", "道歉", "不诚信", "失去信任", "不专业",
        "不尊重", "粗鲁", "耍人", "坑", "不认账", "推卸",
        r"\bunacceptable\b", r"\brude\b", r"\bscam\b", r"\bfraud\w*", r"\bcheat\w*", r"\blie[ds]?\b",
        r"\bfurious\b", r"\bdisappoint\w*", r"\bworst\b", r"\bterrible\b", r"\bawful\b", r"\bridiculous\b",
        r"\bunprofessional\b", r"\bincompetent\b", r"\bmisleading\b", r"\bfed up\b", r"\bnever again\b",
        r"\bimpolite\b", r"\bdisgust\w*", r"\bovercharg\w*", r"\bignored?\b", r"\bno one cares\b",
        r"\bhorrible\b", r"\bappalling\b", r"\boutrageous\b", r"\bshameful\b", r"\bbad review\b",
        negatable=True,
    ),
    *_rules(
        "complaint", 3.0,
        # threats to escalate outside the company are complaints (urgency.py also flags them)
        "律师", "起诉", "法院", "法律途径", "曝光", "媒体", "记者", "电视台", "12315", "消协", "消费者协会", "工商局",
        "说好的", "承诺的", "出尔反尔", "食言", "欺负", "恶劣", "不讲理", "太过分", "过分了", "凭什么", "这算什么",
        "当我们傻", "擅自", "推脱", "骚扰", "不耐烦", "冷嘲热讽", "阴阳怪气", "傲慢", "难堪", "没责任心",
        "没人回", "找不到人", "耐心", "浪费时间", "涉嫌", "冒充",
        r"\blawyer\b", r"\bsue\b", r"\bcourt\b", r"\bnews\b", r"\bjournalist\b", r"\bgo public\b",
        r"\bunhappy\b", r"\bnot good enough\b", r"\bsick of\b", r"\bhung up\b", r"\bcondescending\b",
        r"\bwithout (?:telling|asking|informing|notice)\b", r"\b(?:zero|no) (?:replies|reply|response)\b",
        r"\byou keep\b", r"\bpressured\b", r"\bnobody (?:called|answered|replied|cares)\b", r"\bdidn'?t care\b",
        negatable=True,
    ),
    *_rules(
        "complaint", 1.5, "态度", "骗", "不满意", "多收", "扣了", "承诺", "却", "还要我", "一直说",
        r"\bangry\b", r"\bpoor service\b", r"\bpromised\b", r"\bwas told\b", r"\bmanager\b",
    ),
    *_rules(
        "after_sales", 2.5,
        "退货", "换货", "退换", "维修", "修理", "报修", "返修", "检修", "坏了", "故障", "退款", "退钱", "保修",
        "安装", "上门", "售后", "不制冷", "不加热", "开不了机", "无法开机", "漏水", "异响", "破损", "损坏", "少发",
        "缺少", "缺件", "发错", "寄错", "补发", "七天无理由", "质保", "换新", "换一个", "赔偿", "理赔", "寄回",
        "退回", "失灵", "报错", "不排水", "充不进电", "没声音", "坏点", "裂纹", "碎了", "断了", "掉色", "开胶",
        "接触不良", "不亮", "打不着火", "移机", "保养",
        r"\brefund\w*", r"\breturn(?:ed|ing)?\b", r"\bsend (?:it )?back\b", r"\bexchange\b", r"\breplac\w*",
        r"\brepair\w*", r"\bbroken\b", r"\bbroke\b", r"\bdefect\w*", r"\bfaulty\b", r"\bstopped working\b",
        r"\bnot working\b", r"\bdoesn'?t work\b", r"\bwon'?t (?:turn on|start|charge)\b", r"\bwarranty\b",
        r"\binstall\w*", r"\btechnician\b", r"\bdamaged?\b", r"\bwrong (?:item|size|colou?r)\b", r"\bleak\w*",
        r"\bcrack\w*", r"\bcompensat\w*", r"\bmoney back\b", r"\bmissing\b", r"\berror code\b", r"\bfix(?:ed)?\b",
    ),
    *_rules(
        "after_sales", 2.0,
        "不转", "死机", "自动重启", "断裂", "关不严", "滴水", "漏电", "打不开", "不启动", "不脱水", "不热", "退掉",
        "能退吗", "能换吗", "换大", "换小", "卡顿", "失效", "花屏", "黑屏", "鼓包", "变形", "生锈", "少了",
        r"\bunresponsive\b", r"\bswap\b", r"\bservice engineer\b", r"\bwon'?t\b", r"\bdent\w*\b",
        r"\bkeeps? (?:slipping|crashing|restarting|failing|stopping)\b", r"\bblank\b", r"\bwobbly\b",
        r"\bonly one\b", r"\bcovered\b", r"\bset up\b",
    ),
    *_rules("after_sales", 1.2, "不能用", "没反应", "坏", "修", "换", "退", r"\bno sound\b", r"\bnot cooling\b"),
    *_rules(
        "suggestion", 3.0,
        "建议", "提议", "提个意见", "希望能", "能不能增加", "能否增加", "可以增加", "可以考虑", "要是能", "如果能",
        "最好能", "改进", "优化", "就更好了", "就好了", "期待",
        r"\bsuggest\w*", r"\bfeature request\b", r"\bit would be (?:great|nice|helpful|good)\b",
        r"\bwould be (?:great|nice|helpful)\b", r"\b(?:could|can) you (?:please )?add\b", r"\bplease add\b",
        r"\bimprove\w*", r"\bconsider\w*", r"\bi wish\b", r"\bidea\b", r"\bwhy not\b", r"\bi recommend\b",
        r"\byou should\b", r"\bi'?d love to see\b", r"\bhope you can\b", r"\bwould help if\b",
    ),
    *_rules(
        "suggestion", 2.0,
        "能否在", "能不能在", "是否可以", "可以在", "可以把", "应该加", "加一个", "加个", "做得", "我有个想法", "想法",
        "更方便", "会更", "方便很多", "好很多", "反馈给",
        r"\bhave you thought about\b", r"\bwould you (?:think about|consider)\b", r"\bit would make sense\b",
        r"\bit'?d be\b", r"\bit would be\b", r"\bmaybe (?:add|offer|include|make)\b", r"\bneeds a\b",
        r"\bcould the\b", r"\bwould love\b", r"\bmy feedback\b", r"\bnext version\b",
    ),
    *_rules("suggestion", 1.5, "希望", "增加", "新增", "推出", "增设", "功能", r"\bfeedback\b", r"\boption\b"),
    *_rules(
        "consultation", 2.5,
        "多少钱", "价格", "咨询", "想了解", "了解一下", "营业时间", "几点", "有现货", "有货", "区别", "参数", "尺寸",
        "兼容", "适合", "支持", "怎么兑换", "优惠券", "积分", "多久", "几天能到", "哪里可以", "在哪里",
        r"\bhow much\b", r"\bprice\w*", r"\bopening hours\b", r"\bin stock\b", r"\bdifference\b", r"\bcompatible\b",
        r"\bdo you (?:offer|accept|have|deliver|ship|sell)\b", r"\benquir\w*", r"\binquir\w*", r"\bwondering\b",
        r"\binformation\b", r"\bdimensions?\b", r"\bavailable\b",
    ),
    *_rules(
        "consultation", 1.0,
        "请问", "怎么", "如何", "怎样", "有没有", "是否", "能否", "什么时候", "哪些", "吗", "呢",
        r"\bhow (?:do|can|to|long)\b", r"\bwhat(?:'s| is| are)\b", r"\bis (?:it|this|there)\b", r"\bcan i\b",
        r"\bdoes (?:it|this|the)\b", r"\bwhen will\b", r"\bwhere\b", r"\bquestion\b", r"\bany idea\b",
        r"^(?:hi|hello|dear \w+)?[ ,!-]*(?:is|are|can|does|do|what|which|how|when|where)\b",
        "哪个", "多少", "几折", "在哪", "包不包", "是不是", "有哪些", "可不可以", "想问", "问一下", "问问",
    ),
)

_ZH_NEGATORS = ("不是", "并非", "不想", "不用", "无需", "不要", "没有", "并不", "不", "没", "无", "未", "别")
_ZH_FILLERS = (
    "打算", "是要", "是想", "那么", "这么", "怎么", "是很", "要", "想", "是", "太", "很", "在", "算", "用", "人"
)
_EN_NEGATORS = frozenset(
    {"not", "no", "never", "don't", "dont", "isn't", "isnt", "without", "nothing", "wasn't", "nobody", "none"}
)
_CLAUSE_BREAK = re.compile(r"[,.;:!?,。;:!?、\n]|\b(?:and|but)\b|但是|可是|不过")
_CJK = re.compile(r"[\u3400-\u9fff]")
_CJK_RUN = re.compile(r"[\u3400-\u9fff]+")
_EN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_EN_STOP = frozenset(
    {
        "a", "an", "the", "i", "me", "my", "we", "our", "you", "your", "it", "its", "is", "are", "was", "were",
        "be", "been", "am", "to", "of", "in", "on", "at", "for", "and", "or", "but", "with", "this", "that",
        "these", "those", "have", "has", "had", "do", "did", "so", "as", "by", "from",
    }
)


def normalise(text: str) -> str:
    """NFKC (full-width → half-width) and lower case: the form every matcher sees."""
    return unicodedata.normalize("NFKC", text).lower()


def is_negated(text: str, start: int) -> bool:
    """True when the keyword starting at `start` of normalised `text` is negated in its own clause.

    Chinese: the clause ends in a negator, optionally followed by one filler (不是要投诉, 没有想投诉, 不急).
    English: one of the three words before it is a negation (not complaining, no rush, isn't urgent).
    """
    clause = _CLAUSE_BREAK.split(text[max(0, start - 40) : start])[-1]
    if _CJK.match(text, start):
        tail = clause.replace(" ", "")
        candidates = [tail] + [tail[: -len(f)] for f in _ZH_FILLERS if tail.endswith(f)]
        return any(c.endswith(neg) for c in candidates for neg in _ZH_NEGATORS)
    words = _EN_WORD.findall(clause)[-3:]
    return any(w in _EN_NEGATORS or w.endswith("n't") for w in words)


@dataclass(frozen=True)
class _CompiledRule:
    rule: KeywordRule
    regex: re.Pattern[str]


def _compile(rules: Iterable[KeywordRule]) -> tuple[_CompiledRule, ...]:
    compiled = []
    for rule in rules:
        if rule.category not in CATEGORIES:
            raise ValidationError(f"keyword rule {rule.pattern!r} names unknown category {rule.category!r}")
        is_regex = any(ch in rule.pattern for ch in "\\[](){}|?*+")
        regex = re.compile(rule.pattern if is_regex else re.escape(rule.pattern))
        compiled.append(_CompiledRule(rule, regex))
    return tuple(compiled)


def rule_scores(text: str, rules: Sequence[_CompiledRule]) -> tuple[dict[str, float], list[str], bool]:
    """Per-category sum of matching, non-negated keyword weights; the keywords; whether one was explicit.

    A keyword contained in a longer matched keyword of the same category (坏 in 坏了) is not counted twice.
    """
    scores = dict.fromkeys(CATEGORIES, 0.0)
    matched: list[str] = []
    explicit = False
    taken: dict[str, list[tuple[int, int]]] = {c: [] for c in CATEGORIES}
    for compiled in rules:
        rule = compiled.rule
        for m in compiled.regex.finditer(text):
            span = (m.start(), m.end())
            if any(s <= span[0] and span[1] <= e for s, e in taken[rule.category]):
                continue
            if rule.negatable and is_negated(text, m.start()):
                continue
            taken[rule.category].append(span)
            scores[rule.category] += rule.weight
            matched.append(m.group(0))
            explicit = explicit or rule.explicit
            break  # a keyword counts once per message
    return scores, matched, explicit


_jieba_lock = threading.Lock()
_jieba_ready = False


def _cut(text: str) -> list[str]:
    """jieba.lcut with the default dictionary; jieba is imported on first use, its cache goes to the temp dir."""
    global _jieba_ready
    import jieba

    if not _jieba_ready:
        with _jieba_lock:
            if not _jieba_ready:
                jieba.setLogLevel(logging.WARNING)
                jieba.dt.tmp_dir = tempfile.gettempdir()  # Lambda: only /tmp is writable
                jieba.initialize()
                _jieba_ready = True
    return [str(token) for token in jieba.lcut(text)]


def _stem(word: str) -> str:
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 4 and word.endswith("ed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def tokenise(text: str) -> list[str]:
    """Features of a message: jieba words (w:), lower-cased English stems (e:), Chinese character bigrams (b:)."""
    norm = normalise(text)
    tokens: list[str] = []
    runs = _CJK_RUN.findall(norm)
    if runs:
        tokens.extend("w:" + tok for tok in _cut(norm) if _CJK.search(tok))
        for run in runs:
            tokens.extend("b:" + run[i : i + 2] for i in range(len(run) - 1))
    tokens.extend("e:" + _stem(w) for w in _EN_WORD.findall(norm) if w not in _EN_STOP and len(w) > 1)
    return tokens


@dataclass(frozen=True)
class Classification:
    """The category chosen for a message, how sure we are (0..1), what decided it and per-category scores."""

    category: str
    confidence: float
    source: str  # hint | rules | model
    scores: dict[str, float] = field(default_factory=dict)


def resolve_hint(hint: str) -> str | None:
    """The category a channel hint names (id or Chinese label, any case), or None when it names none."""
    key = unicodedata.normalize("NFKC", hint).strip().lower()
    if key in CATEGORIES:
        return key
    return HINT_ALIASES.get(key)


Example = tuple[str, str] | Mapping[str, Any]


def _example(item: Example) -> tuple[str, str]:
    if isinstance(item, Mapping):
        text, category = item.get("text"), item.get("category")
    else:
        text, category = item
    if not isinstance(text, str) or not isinstance(category, str):
        raise ValidationError("a training example needs a text and a category")
    if category not in CATEGORIES:
        raise ValidationError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    return text, category


class Classifier:
    """A trained naive Bayes model plus keyword rules. `train` adds examples (e.g. staff overrides)."""

    # The model's log-likelihood differences grow with message length; they are tempered by
    # MODEL_WEIGHT / sqrt(token count) before the rule weights are added.
    MODEL_WEIGHT = 1.5

    def __init__(
        self,
        examples: Iterable[Example] = (),
        *,
        rules: Iterable[KeywordRule] = KEYWORD_RULES,
        alpha: float = 1.0,
    ) -> None:
        self._rules = _compile(rules)
        self._alpha = alpha
        self._doc_counts: Counter[str] = Counter()
        self._token_counts: dict[str, Counter[str]] = {c: Counter() for c in CATEGORIES}
        self._token_totals: Counter[str] = Counter()
        self._vocabulary: set[str] = set()
        self._lock = threading.Lock()
        self.train(examples)

    @property
    def size(self) -> int:
        """How many examples the model has seen."""
        return sum(self._doc_counts.values())

    def train(self, examples: Iterable[Example]) -> int:
        """Adds labelled examples ((text, category) pairs or {"text", "category"} maps); returns how many."""
        parsed = [_example(item) for item in examples]
        featurised = [(tokenise(text), category) for text, category in parsed]
        with self._lock:
            for tokens, category in featurised:
                self._doc_counts[category] += 1
                self._token_counts[category].update(tokens)
                self._token_totals[category] += len(tokens)
                self._vocabulary.update(tokens)
        return len(parsed)

    def _model_log_scores(self, tokens: Sequence[str]) -> dict[str, float]:
        n_docs = sum(self._doc_counts.values())
        vocab = len(self._vocabulary) or 1
        known = Counter(t for t in tokens if t in self._vocabulary)
        scores: dict[str, float] = {}
        for category in CATEGORIES:
            prior = (self._doc_counts[category] + 1) / (n_docs + len(CATEGORIES))
            denominator = self._token_totals[category] + self._alpha * vocab
            counts = self._token_counts[category]
            score = math.log(prior)
            for token in sorted(known):
                score += known[token] * math.log((counts[token] + self._alpha) / denominator)
            scores[category] = score
        return scores

    def classify(self, text: str, *, hint: str = "") -> Classification:
        """Category of `text`; a valid channel hint wins outright with confidence 1.0."""
        hinted = resolve_hint(hint) if hint else None
        if hinted:
            return Classification(hinted, 1.0, "hint", {c: float(c == hinted) for c in CATEGORIES})
        text = text if isinstance(text, str) else str(text)
        norm = normalise(text)
        tokens = tokenise(text)
        model = self._model_log_scores(tokens)
        top = max(model.values())
        temper = self.MODEL_WEIGHT / math.sqrt(max(1, len(tokens)))
        rules, _, explicit_complaint = rule_scores(norm, self._rules)
        logits = {c: (model[c] - top) * temper + rules[c] for c in CATEGORIES}
        if explicit_complaint:  # "我要投诉,空调坏了三次没修好" is a complaint, not a repair request
            logits["complaint"] = max(logits["complaint"], logits["after_sales"] + EXPLICIT_MARGIN)
        peak = max(logits.values())
        exps = {c: math.exp(logits[c] - peak) for c in CATEGORIES}
        total = sum(exps.values())
        probabilities = {c: round(exps[c] / total, 6) for c in CATEGORIES}
        best = max(CATEGORIES, key=lambda c: (logits[c], -CATEGORIES.index(c)))
        rule_best = max(CATEGORIES, key=lambda c: (rules[c], -CATEGORIES.index(c)))
        decided_by_rules = rule_best == best or (explicit_complaint and best == "complaint")
        source = "rules" if rules[best] > 0 and decided_by_rules else "model"
        confidence = min(1.0, max(0.0, probabilities[best]))
        return Classification(best, confidence, source, probabilities)


_default: Classifier | None = None
_default_lock = threading.Lock()


def default_classifier() -> Classifier:
    """The process-wide classifier trained on training_data.py, built on first use."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                from .training_data import TRAINING_EXAMPLES

                _default = Classifier(TRAINING_EXAMPLES)
    return _default


def classify(text: str, *, hint: str = "") -> Classification:
    """Classifies with the default classifier (see Classifier.classify)."""
    return default_classifier().classify(text, hint=hint)


@dataclass(frozen=True)
class ClassMetrics:
    """Precision and recall of one category, and how many examples carry that label."""

    precision: float
    recall: float
    count: int


@dataclass(frozen=True)
class EvalReport:
    """Per-class metrics, overall accuracy and the confusion counts (true → predicted → n)."""

    per_class: dict[str, ClassMetrics]
    accuracy: float
    total: int
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    def format(self) -> str:
        """A plain-text table of the report."""
        lines = [f"{'category':<14}{'precision':>10}{'recall':>8}{'count':>7}"]
        for category, m in self.per_class.items():
            lines.append(f"{category:<14}{m.precision:>10.3f}{m.recall:>8.3f}{m.count:>7d}")
        lines.append(f"accuracy {self.accuracy:.3f} on {self.total} examples")
        return "\n".join(lines)


def evaluate(examples: Iterable[Example], classifier: Classifier | None = None) -> EvalReport:
    """Classifies every example (ignoring hints) and compares with its label."""
    model = classifier or default_classifier()
    confusion = {c: dict.fromkeys(CATEGORIES, 0) for c in CATEGORIES}
    for item in examples:
        text, truth = _example(item)
        confusion[truth][model.classify(text).category] += 1
    total = sum(sum(row.values()) for row in confusion.values())
    correct = sum(confusion[c][c] for c in CATEGORIES)
    per_class = {}
    for c in CATEGORIES:
        predicted = sum(confusion[t][c] for t in CATEGORIES)
        count = sum(confusion[c].values())
        per_class[c] = ClassMetrics(
            precision=confusion[c][c] / predicted if predicted else 0.0,
            recall=confusion[c][c] / count if count else 0.0,
            count=count,
        )
    return EvalReport(per_class, correct / total if total else 0.0, total, confusion)


def is_chinese(text: str) -> bool:
    """True when the text contains any CJK ideograph."""
    return bool(_CJK.search(text))


def load_jsonl(path: str) -> list[dict[str, Any]]:
    """Reads one JSON object per non-blank line."""
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def main(argv: Sequence[str]) -> int:
    """`python -m chalicelib.domain.triage.classifier FILE.jsonl`: prints the report, all / zh / en."""
    if len(argv) != 1:
        print("usage: python -m chalicelib.domain.triage.classifier EVAL.jsonl", file=sys.stderr)
        return 2
    rows = load_jsonl(argv[0])
    for label, subset in (
        ("all", rows),
        ("zh", [r for r in rows if is_chinese(r["text"])]),
        ("en", [r for r in rows if not is_chinese(r["text"])]),
    ):
        print(f"== {label} ==")
        print(evaluate(subset).format())
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
