"""What a username may contain, and when two names are the same or look the same (pure).

Three forms of a name:

- the name itself, as registered: what everyone sees, and what the user logs in with;
- ``canonical(name)``: NFKC and case folding, repeated to a fixed point. Two names with
  the same canonical form are the same user: ``Alice``, ``ALICE``, ``alice`` in full-width
  letters (U+FF41...) or in mathematical bold (U+1D41A...) all log in as ``alice``;
- ``skeleton(name)``: the confusable skeleton of Unicode TR39 (section 4), from the
  confusables data that ``confusable-homoglyphs`` 3.3.1 ships (Unicode's
  confusables.txt). Names with equal skeletons look alike (``alice`` with a Cyrillic a,
  U+0430, or a dotless i, U+0131; ``rn`` and ``m``); a new name whose skeleton matches an
  existing user's is refused.

``username_problem`` checks the shape of a new name. It applies to registration only:
accounts registered under older rules keep logging in under their exact names.
"""

from __future__ import annotations

import functools
import json
import unicodedata
from importlib import resources

from confusable_homoglyphs import categories as _scripts

MAX_USERNAME = 32
"""Characters in a username (as typed, before normalisation)."""

PUNCTUATION = "_.-"
"""The only non-letters besides digits that a name may contain."""

_NEUTRAL_SCRIPTS = frozenset({"COMMON", "INHERITED"})
# Scripts that are written together (TR39 5.2, "highly restrictive"): a Japanese name mixes
# Han, Hiragana and Katakana, a Korean one Han and Hangul; Latin may join each.
_SCRIPT_FAMILIES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)


def canonical(name: str) -> str:
    """The form in which names are compared: NFKC + casefold, to a fixed point.

    One pass is not always stable (case folding can produce what NFKC rewrites again);
    two passes are for every string tried, and the loop stops at the fixed point.
    """
    form = name
    for _ in range(4):
        folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", form).casefold())
        if folded == form:
            break
        form = folded
    return form


def _character_problem(c: str, first: bool) -> str | None:
    category = unicodedata.category(c)
    code = f"U+{ord(c):04X}"
    if category == "Cn":
        return f"username contains an unassigned code point ({code})"
    if category in ("Cc", "Cf"):
        return f"username contains a control or invisible formatting character ({code})"
    if category in ("Co", "Cs"):
        return f"username contains a private-use or surrogate code point ({code})"
    if category[0] == "M":
        if first:
            return "username starts with a combining mark"
        return None
    if category[0] == "L" or category == "Nd" or c in PUNCTUATION:
        return None
    return "username may contain only letters, digits, '_', '.' and '-'"


def scripts_of(name: str) -> frozenset[str]:
    """The scripts ``name`` is written in (Unicode Scripts.txt), without Common/Inherited."""
    found = set()
    for c in name:
        alias, _category = _scripts.aliases_categories(c)
        found.add(alias)
    return frozenset(found - _NEUTRAL_SCRIPTS)


def username_problem(name: str) -> str | None:
    """Why ``name`` cannot be registered, or None when it can (its shape only; whether it
    collides with an existing user is the database's question, see ``Database``)."""
    if not name:
        return "username is empty"
    if len(name) > MAX_USERNAME:
        return f"username is longer than {MAX_USERNAME} characters"
    for i, c in enumerate(name):
        problem = _character_problem(c, first=i == 0)
        if problem is not None:
            return problem
    folded = canonical(name)
    for i, c in enumerate(folded):  # NFKC may bring in what the name did not show
        problem = _character_problem(c, first=i == 0)
        if problem is not None:
            return problem
    scripts = scripts_of(name)
    if len(scripts) > 1 and not any(scripts <= family for family in _SCRIPT_FAMILIES):
        return "username mixes scripts (" + ", ".join(sorted(scripts)).lower() + ")"
    return None


@functools.cache
def _prototypes() -> dict[str, str]:
    """Each confusable character -> the representative of its class of look-alikes.

    confusables.json lists, for each character, the characters and sequences it is
    confusable with (both directions of confusables.txt). The classes joined from those
    pairs are TR39's skeleton classes; each gets one representative: the class's
    multi-character sequence if it has one (``m`` -> ``rn``, as TR39 maps it), else its
    ASCII member, else its lowest code point.
    """
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent.setdefault(root, root) != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    def visible(text: str) -> str:  # some entries wrap a right-to-left glyph in bidi marks
        return "".join(c for c in text if unicodedata.category(c) != "Cf")

    for char, homoglyphs in data.items():
        char = visible(char)
        for entry in homoglyphs:
            other = visible(entry["c"])
            if not char or not other:
                continue
            a, b = find(char), find(other)
            if a != b:
                parent[a] = b
    classes: dict[str, list[str]] = {}
    for member in list(parent):
        classes.setdefault(find(member), []).append(member)
    single: dict[str, str] = {}
    sequences: dict[str, str] = {}
    for members in classes.values():
        chars = [m for m in members if len(m) == 1]
        seqs = [m for m in members if len(m) > 1]
        if chars:
            rep = min(chars, key=lambda m: (not m.isascii(), ord(m)))
            for m in chars:
                single[m] = rep
        if seqs:
            seq = min(seqs, key=lambda m: (len(m), m))
            for m in chars:
                sequences[m] = seq
    mapping = dict(single)
    for char, seq in sequences.items():
        mapping[char] = "".join(single.get(c, c) for c in seq)
    return {k: v for k, v in mapping.items() if k != v}


def _tr39(text: str) -> str:
    table = _prototypes()
    mapped = "".join(table.get(c, c) for c in unicodedata.normalize("NFD", text))
    return unicodedata.normalize("NFD", mapped)


def skeleton(name: str) -> str:
    """The confusable skeleton, compared ignoring case: TR39's skeleton of the name (as it
    is shown), case-folded, and the skeleton of that again so that the result is stable."""
    return _tr39(_tr39(unicodedata.normalize("NFKC", name)).casefold())
