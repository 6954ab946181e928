"""Names that mix alphabets in a way that deceives the eye: ``pаram`` with a Cyrillic ``а`` reads like
``param`` but is another name. Python accepts such names; cgraph accepts them too and warns."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from cgraph_cli.errors import Source, format_located

# Cyrillic and Greek letters drawn like a Latin letter, and that letter
LOOKALIKES = {
    **dict(zip("аеорсухіјѕһԁԛԝӏ", "aeopcyxijshdqwl")),
    **dict(zip("АВЕКМНОРСТХУІЈЅԚԜ", "ABEKMHOPCTXYIJSQW")),
    **dict(zip("οΟΑΒΕΖΗΙΚΜΝΡΤΥΧν", "oOABEZHIKMNPTYXv")),
}
_LATIN_LOOKALIKES = set(LOOKALIKES.values())


def script(ch: str) -> str | None:
    """The alphabet of a letter (``LATIN``, ``CYRILLIC``, ``GREEK``, ...); None for anything else."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    return name.split(" ")[0] if name else None


def confusable(name: str) -> tuple[int, str] | None:
    """The first character of ``name`` that looks like a letter of the name's main alphabet but belongs to
    another, with the sentence saying so: (its position in the name, the message); None for a plain name."""
    if name.isascii():
        return None
    scripts = [script(ch) for ch in name]
    counts: dict[str, int] = {}
    for s in scripts:
        if s is not None:
            counts[s] = counts.get(s, 0) + 1
    if len(counts) < 2:
        return None
    main = max(counts, key=lambda s: (counts[s], s == "LATIN"))
    for k, (ch, s) in enumerate(zip(name, scripts)):
        if s is None or s == main:
            continue
        if main == "LATIN" and ch in LOOKALIKES:
            like = f"the Latin '{LOOKALIKES[ch]}'"
        elif s == "LATIN" and ch in _LATIN_LOOKALIKES:
            twins = [c for c, latin in LOOKALIKES.items() if latin == ch and script(c) == main]
            if not twins:
                continue
            like = f"the {main.title()} '{twins[0]}'"
        else:
            continue
        return k, (
            f"the name '{name}' mixes alphabets: '{ch}' is U+{ord(ch):04X} {unicodedata.name(ch)}, "
            f"which looks like {like}"
        )
    return None


def name_warnings(names: Iterable[str], source: Source) -> list[str]:
    """A warning for each of the program's ``names`` that mixes alphabets confusably (:func:`confusable`), at
    the character in the name's first occurrence in the source."""
    out = []
    for name in names:
        found = confusable(name)
        if found is None:
            continue
        k, message = found
        m = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", source.text)
        span = None if m is None else (m.start() + k, m.start() + k + 1)
        hint = "two names that look alike are different names; type it in one alphabet"
        out.append("warning: " + format_located(message, span, source, hint))
    return out
