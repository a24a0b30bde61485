"""The way people type names, phones and dates, made comparable: pure functions, no Django.

- `fold` makes a name searchable whatever its accents, case or apostrophe (José = Jose,
  O’Brien = O'Brien);
- `e164` normalises a phone number with the `phonenumbers` library, read in the clinic's
  country when it has no leading +;
- `parse_day` reads a date in the clinic's order (day first or month first) or ISO, and
  `parse_year` a year alone."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata

import phonenumbers

# The clinic's country and its date order are decided once, in lib/formats.py, for search,
# import and forms alike.
from mesoclinic.lib.formats import DAY_FIRST as DAY_FIRST
from mesoclinic.lib.formats import DEFAULT_REGION as DEFAULT_REGION
from mesoclinic.lib.formats import MONTH_FIRST as MONTH_FIRST
from mesoclinic.lib.formats import region_of as region_of

# Every apostrophe-like mark people type or paste: the right and left single quotes, the
# modifier letter apostrophe, the prime, the grave and acute accents used as apostrophes.
APOSTROPHES = str.maketrans({c: "'" for c in "\u2019\u2018\u02bc\u2032`\u00b4"})


def fold(text: str) -> str:
    """Lowercase, without accents, with every apostrophe the same one and single spaces."""
    text = text.translate(APOSTROPHES)
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(bare.split())


def search_key(first_name: str, last_name: str) -> str:
    """What a name search matches: both names, folded."""
    return fold(f"{first_name} {last_name}")


def e164(raw: str, region: str = DEFAULT_REGION) -> str:
    """The number in E.164 form (+12125550101), or "" when it is not a possible number."""
    if not raw or not raw.strip():
        return ""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return ""
    # A number without its area code (possible only locally) is not a whole number.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        return ""
    return str(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164))


def digits(text: str) -> str:
    return re.sub(r"\D", "", text)


PHONE_LIKE = re.compile(r"^\+?[0-9 ()\-./]{4,25}$")


def looks_like_phone(text: str) -> bool:
    """Digits with the marks people put in phone numbers, at least five digits of them."""
    return bool(PHONE_LIKE.match(text.strip())) and len(digits(text)) >= 5


def parse_day(text: str, order: str = DAY_FIRST) -> dt.date | None:
    """The date in `text`: ISO (1990-05-17), or with / . or - in the clinic's `order`
    (17/05/1990 day first, 05/17/1990 month first). None when it is not a date."""
    text = text.strip()
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        pass
    m = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})[/.\-](\d{4})", text)
    if not m:
        return None
    a, b, year = (int(g) for g in m.groups())
    day, month = (b, a) if order == MONTH_FIRST else (a, b)
    try:
        return dt.date(year, month, day)
    except ValueError:
        return None


def parse_year(text: str) -> int | None:
    """A year of birth alone (1900 to 2100), or None."""
    text = text.strip()
    if re.fullmatch(r"\d{4}", text) and 1900 <= int(text) <= 2100:
        return int(text)
    return None


def name_words(text: str) -> list[str]:
    """The folded words of a name search; "Last, First" is the same words as "First Last"."""
    return fold(text.replace(",", " ")).split()
