"""China's public holidays and make-up working days (调休上班) as published by the State Council."""
from __future__ import annotations

from datetime import date, timedelta


def _span(first: date, last: date) -> list[date]:
    """Every date from `first` to `last`, both included."""
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


# 2025: 国务院办公厅关于2025年部分节假日安排的通知 (国办发明电〔2024〕12号, 2024-11-12),
# as republished by Xinhua, e.g. https://m.gmw.cn/2024-11/12/content_1303894933.htm
HOLIDAYS_2025: dict[str, list[date]] = {
    "元旦": [date(2025, 1, 1)],  # 1月1日(周三)放假1天,不调休
    "春节": _span(date(2025, 1, 28), date(2025, 2, 4)),  # 1月28日(除夕)至2月4日(初七),共8天
    "清明节": _span(date(2025, 4, 4), date(2025, 4, 6)),  # 4月4日至6日,共3天
    "劳动节": _span(date(2025, 5, 1), date(2025, 5, 5)),  # 5月1日至5日,共5天
    "端午节": _span(date(2025, 5, 31), date(2025, 6, 2)),  # 5月31日至6月2日,共3天
    "国庆节、中秋节": _span(date(2025, 10, 1), date(2025, 10, 8)),  # 10月1日至8日,共8天
}
MAKEUP_2025: dict[str, list[date]] = {
    "春节": [date(2025, 1, 26), date(2025, 2, 8)],  # 1月26日(周日)、2月8日(周六)上班
    "劳动节": [date(2025, 4, 27)],  # 4月27日(周日)上班
    "国庆节、中秋节": [date(2025, 9, 28), date(2025, 10, 11)],  # 9月28日(周日)、10月11日(周六)上班
}

# 2026: 国务院办公厅关于2026年部分节假日安排的通知 (国务院办公厅, 2025-11-04),
# as republished by Xinhua, e.g. https://politics.gmw.cn/2025-11/04/content_38391083.htm
HOLIDAYS_2026: dict[str, list[date]] = {
    "元旦": _span(date(2026, 1, 1), date(2026, 1, 3)),  # 1月1日(周四)至3日(周六),共3天
    "春节": _span(date(2026, 2, 15), date(2026, 2, 23)),  # 2月15日(腊月二十八)至23日(初七),共9天
    "清明节": _span(date(2026, 4, 4), date(2026, 4, 6)),  # 4月4日(周六)至6日(周一),共3天
    "劳动节": _span(date(2026, 5, 1), date(2026, 5, 5)),  # 5月1日(周五)至5日(周二),共5天
    "端午节": _span(date(2026, 6, 19), date(2026, 6, 21)),  # 6月19日(周五)至21日(周日),共3天
    "中秋节": _span(date(2026, 9, 25), date(2026, 9, 27)),  # 9月25日(周五)至27日(周日),共3天
    "国庆节": _span(date(2026, 10, 1), date(2026, 10, 7)),  # 10月1日(周四)至7日(周三),共7天
}
MAKEUP_2026: dict[str, list[date]] = {
    "元旦": [date(2026, 1, 4)],  # 1月4日(周日)上班
    "春节": [date(2026, 2, 14), date(2026, 2, 28)],  # 2月14日(周六)、2月28日(周六)上班
    "劳动节": [date(2026, 5, 9)],  # 5月9日(周六)上班
    "国庆节": [date(2026, 9, 20), date(2026, 10, 10)],  # 9月20日(周日)、10月10日(周六)上班
}

# 2027: the State Council's notice was not found in the sources consulted; add it here once published.

HOLIDAY_NAMES: dict[date, str] = {
    day: name for table in (HOLIDAYS_2025, HOLIDAYS_2026) for name, days in table.items() for day in days
}
MAKEUP_NAMES: dict[date, str] = {
    day: name for table in (MAKEUP_2025, MAKEUP_2026) for name, days in table.items() for day in days
}
HOLIDAYS: frozenset[date] = frozenset(HOLIDAY_NAMES)
MAKEUP_WORKDAYS: frozenset[date] = frozenset(MAKEUP_NAMES)
COVERED_YEARS: tuple[int, ...] = (2025, 2026)
