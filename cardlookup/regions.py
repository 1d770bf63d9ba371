"""Regions (GB/T 2260 province codes) and the default set open to the
service (R2, as of 2022-03-21). Which regions are open is configuration."""

from __future__ import annotations

REGION_NAMES: dict[str, str] = {
    "110000": "北京",
    "120000": "天津",
    "130000": "河北",
    "140000": "山西",
    "150000": "内蒙古",
    "210000": "辽宁",
    "220000": "吉林",
    "230000": "黑龙江",
    "310000": "上海",
    "320000": "江苏",
    "330000": "浙江",
    "340000": "安徽",
    "350000": "福建",
    "360000": "江西",
    "370000": "山东",
    "410000": "河南",
    "420000": "湖北",
    "430000": "湖南",
    "440000": "广东",
    "450000": "广西",
    "460000": "海南",
    "500000": "重庆",
    "510000": "四川",
    "520000": "贵州",
    "530000": "云南",
    "540000": "西藏",
    "610000": "陕西",
    "620000": "甘肃",
    "630000": "青海",
    "640000": "宁夏",
    "650000": "新疆",
}

DEFAULT_OPEN_REGIONS: frozenset[str] = frozenset(
    {
        "310000",
        "530000",  # first batch, 2021-12-20: Shanghai, Yunnan
        "110000",
        "500000",
        "520000",
        "220000",
        "410000",
        "350000",
        "330000",
        "140000",
        "430000",
        "230000",
        "340000",
        "610000",
        "650000",
        "460000",
    }
)


def parse_open_regions(value: object) -> frozenset[str]:
    """The `open_regions` value of a hub.toml (R2): a list of province codes.
    ValueError saying what is wrong (the caller names the file and the key).
    The hub's configuration loader and `cardlookup-population --hub-config`
    both read the key through this, so they cannot disagree."""
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError("must be a list of non-empty strings")
    for code in value:
        if code not in REGION_NAMES:
            raise ValueError(f"{code!r} is not a GB/T 2260 province code")
    return frozenset(value)
