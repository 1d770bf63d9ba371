"""The default bank registry: the first 16 banks of docs/rules.md, and synthetic
banks for scale tests. Which banks take part is configuration, not code (R2);
this module only supplies defaults."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BankInfo:
    code: str
    """Bank category code (银行类别代码), e.g. "102"."""
    display_name: str
    english_name: str
    debit_bins: tuple[str, ...]
    """6-digit issuer prefixes the bank uses for debit cards."""
    credit_bins: tuple[str, ...]


DEFAULT_BANKS: tuple[BankInfo, ...] = (
    BankInfo(
        "102", "中国工商银行", "Industrial and Commercial Bank of China", ("622202", "621226"), ("625330", "622230")
    ),
    BankInfo("103", "中国农业银行", "Agricultural Bank of China", ("622848", "622845"), ("622836", "625996")),
    BankInfo("104", "中国银行", "Bank of China", ("621661", "621785"), ("625907", "622760")),
    BankInfo("105", "中国建设银行", "China Construction Bank", ("621700", "622700"), ("622166", "625362")),
    BankInfo("301", "交通银行", "Bank of Communications", ("622262", "621335"), ("622258", "625028")),
    BankInfo("403", "中国邮政储蓄银行", "Postal Savings Bank of China", ("621799", "622188"), ("625919", "628310")),
    BankInfo("302", "中信银行", "China CITIC Bank", ("621773", "622696"), ("622690", "625962")),
    BankInfo("303", "中国光大银行", "China Everbright Bank", ("622666", "621489"), ("625976", "622663")),
    BankInfo("308", "招商银行", "China Merchants Bank", ("622588", "621483"), ("622575", "625802")),
    BankInfo("310", "上海浦东发展银行", "Shanghai Pudong Development Bank", ("622521", "621792"), ("622518", "625970")),
    BankInfo("305", "中国民生银行", "China Minsheng Bank", ("622622", "621691"), ("622600", "625911")),
    BankInfo("304", "华夏银行", "Hua Xia Bank", ("622630", "621222"), ("622637", "625968")),
    BankInfo("307", "平安银行", "Ping An Bank", ("622155", "621626"), ("622157", "625360")),
    BankInfo("309", "兴业银行", "Industrial Bank", ("622908", "621561"), ("622909", "625087")),
    BankInfo("306", "广发银行", "China Guangfa Bank", ("622568", "621462"), ("622556", "625809")),
    BankInfo("316", "浙商银行", "China Zheshang Bank", ("621268", "622309"), ("625821", "628316")),
)

DEFAULT_BANK_CODES: tuple[str, ...] = tuple(b.code for b in DEFAULT_BANKS)


def synthetic_bank(index: int) -> BankInfo:
    """A made-up bank for scale runs (16 -> 1000 banks). Codes start at 5000
    so they never clash with real bank category codes."""
    code = str(5000 + index)
    prefix = f"62{index % 10000:04d}"
    return BankInfo(
        code=code,
        display_name=f"模拟银行{code}",
        english_name=f"Simulated Bank {code}",
        debit_bins=(prefix,),
        credit_bins=(f"{int(prefix) + 1:06d}"[-6:],),
    )


def bank_fleet(count: int) -> tuple[BankInfo, ...]:
    """The default 16 banks, then synthetic ones up to `count` banks."""
    if count < 1:
        raise ValueError("a fleet needs at least one bank")
    base = DEFAULT_BANKS[:count]
    extra = tuple(synthetic_bank(i) for i in range(count - len(base)))
    return base + extra


def bank_by_code(code: str, banks: tuple[BankInfo, ...] = DEFAULT_BANKS) -> BankInfo | None:
    return next((b for b in banks if b.code == code), None)
