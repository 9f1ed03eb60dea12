"""Name lists for the name rules, read from Faker's locale data (a maintained package, offline).

Faker's person providers hold the common given names and surnames of each locale; the union over
the Latin-script locales that hospitals in the consortium's countries see is the gazetteer. A
name that is also a word a report uses (``Rose``, ``Hope``, ``Mark``) is left out here and only
found in context (after ``Dr.``, ``signed by`` ...), never on its own.
"""
from __future__ import annotations

import importlib
from functools import lru_cache

LATIN_LOCALES = ("en_US", "en_GB", "en_IE", "en_IN", "en_NZ", "en_PK", "en_NG", "en_KE", "en", "es", "es_ES", "es_MX",
                 "es_AR", "es_CL", "es_CO", "es_CA", "fr_FR", "fr_CA", "fr_CH", "fr_BE", "fr_QC", "de_DE", "de_AT",
                 "de_CH", "it_IT", "pt_BR", "pt_PT", "nl_NL", "nl_BE", "pl_PL", "cs_CZ", "sk_SK", "sl_SI", "hr_HR",
                 "ro_RO", "lt_LT", "fi_FI", "sv_SE", "da_DK", "no_NO", "is_IS", "tr_TR", "az_AZ", "id_ID", "vi_VN",
                 "yo_NG", "ig_NG", "ha_NG", "zu_ZA", "sw", "tw_GH", "uz_UZ")
# Kept out on purpose: ga_IE, hu_HU, lv_LV, et_EE. bench/scrub_bench.py measures recall on names from
# locales the lists do not read, so those four show how the rules do on names they do not know.
CHINESE_LOCALES = ("zh_CN", "zh_TW")

# Capitalised words of reports, and English words that are also given names or surnames.
COMMON = frozenset("""
a an and are as at be but by can for from had has have he her his in is it its may no not of on or she so that the
their there they this to was we were will with without also after before above below left right upper lower mid
heart chest lung lungs normal clear mild moderate severe small large new old stable unchanged findings impression
comparison indication technique history examination exam report final portable frontal lateral views view single
patient pt dr doctor mr mrs ms miss nurse contact page call noted note please see per given case study studies
april may june july august march january february september october november december monday tuesday wednesday
thursday friday saturday sunday rose hope faith grace joy mark bill will chase grant frank art rich sterling
king queen prince bishop knight young long short white black brown green gray grey gold silver rivers lake hill
field fields wood woods stone rock bush bell ball hall wall little bone bones vessel vessels mass masses spine
chest lobe lobes base bases apex apices bay cross dean page rush sharp swift price cash love lucky major minor
christian church sole major banks moss heath marsh ford fox wolf hart reed miles penny sunny summer winter
autumn spring dawn eve ivy holly lily daisy ruby pearl jade amber crystal dale glen cliff grove wells west north
south east star story gay best early late hunter carter walker baker cook parker porter turner mason taylor
""".split())


@lru_cache(maxsize=1)
def latin_names() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, surnames) in their written case; ``COMMON`` words included (the rules decide)."""
    given, surnames = set(), set()
    for locale in LATIN_LOCALES:
        provider = _provider(locale)
        if provider is None:
            continue
        for attr in ("first_names", "first_names_male", "first_names_female"):
            given.update(_names(provider, attr))
        surnames.update(_names(provider, "last_names"))
    keep = lambda n: len(n) > 1 and n.isalpha() and max(map(ord, n)) < 0x2000  # noqa: E731 - Latin script
    return frozenset(filter(keep, given)), frozenset(filter(keep, surnames))


@lru_cache(maxsize=1)
def chinese_names() -> tuple[frozenset[str], frozenset[str]]:
    """(given names, surnames) in Chinese characters (simplified and traditional)."""
    given, surnames = set(), set()
    for locale in CHINESE_LOCALES:
        provider = _provider(locale)
        if provider is not None:
            given.update(_names(provider, "first_names"))
            surnames.update(_names(provider, "last_names"))
    return frozenset(given), frozenset(surnames)


def _provider(locale: str):
    try:
        return importlib.import_module(f"faker.providers.person.{locale}").Provider
    except ModuleNotFoundError:
        return None


def _names(provider, attr: str) -> set[str]:
    values = getattr(provider, attr, ())
    if not isinstance(values, (list, tuple, set, frozenset, dict)):  # some locales compute them (a property)
        return set()
    return {str(n).strip() for n in values if str(n).strip()}
