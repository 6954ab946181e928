"""Names that mix alphabets in a way that deceives the eye: ``pаram`` with a Cyrillic ``а`` reads like
``param`` but is another name. Python accepts such names; cgraph accepts them too and warns."""

from __future__ import annotations

import unicodedata

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
