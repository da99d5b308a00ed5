"""ImageNet-1K lemma matching in captions, with an Aho-Corasick automaton (pyahocorasick).

A caption mentions a synset when it contains one of its lemmas as a whole word or phrase,
case-insensitively; plural forms count (regular -s/-es/-ies, and common irregular plurals of the
last word). Overlapping matches resolve to the longest one ("sports car" rather than "car" if both
were lemmas). One automaton pass per caption: no per-class scan.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import ahocorasick

from ticcore.imagenet import load_imagenet_classes

IRREGULAR_PLURALS = {"goose": "geese", "mouse": "mice", "ox": "oxen", "foot": "feet", "tooth": "teeth",
                     "man": "men", "woman": "women", "child": "children", "louse": "lice", "wolf": "wolves",
                     "knife": "knives", "leaf": "leaves", "shelf": "shelves", "calf": "calves", "half": "halves"}
_WORD = re.compile(r"\w", re.UNICODE)


def plural_forms(lemma: str) -> set[str]:
    """The lemma and its plural forms (the last word inflected)."""
    head, _, last = lemma.rpartition(" ")
    prefix = head + " " if head else ""
    forms = {lemma}
    if last in IRREGULAR_PLURALS:
        forms.add(prefix + IRREGULAR_PLURALS[last])
    if last.endswith(("s", "x", "z", "ch", "sh")):
        forms.add(prefix + last + "es")
    elif last.endswith("y") and len(last) > 1 and last[-2] not in "aeiou":
        forms.add(prefix + last[:-1] + "ies")
    else:
        forms.add(prefix + last + "s")
    return forms


@dataclass(frozen=True)
class LemmaMatch:
    lemma: str                 # the canonical lemma matched (lower case)
    class_ids: tuple[int, ...]  # every ImageNet class having that lemma (> 1 when ambiguous)
    start: int
    end: int


class LemmaIndex:
    def __init__(self, classes):
        by_lemma: dict[str, set[int]] = {}
        for c in classes:
            for lemma in c.lemmas:
                by_lemma.setdefault(lemma.lower(), set()).add(c.class_id)
        self.by_lemma = {k: tuple(sorted(v)) for k, v in by_lemma.items()}
        auto = ahocorasick.Automaton()
        for lemma in self.by_lemma:
            for form in plural_forms(lemma):
                if form not in auto:
                    auto.add_word(form, (len(form), lemma))
        auto.make_automaton()
        self.automaton = auto

    def find(self, text: str) -> list[LemmaMatch]:
        """Whole-word lemma occurrences, longest first where they overlap, in text order."""
        low = text.lower()
        hits = []
        for end, (length, lemma) in self.automaton.iter(low):
            start = end - length + 1
            if (start > 0 and _WORD.match(low[start - 1])) or (end + 1 < len(low) and _WORD.match(low[end + 1])):
                continue
            hits.append((start, end + 1, lemma))
        hits.sort(key=lambda h: (-(h[1] - h[0]), h[0]))
        taken: list[tuple[int, int]] = []
        out = []
        for start, end, lemma in hits:
            if any(start < e and s < end for s, e in taken):
                continue
            taken.append((start, end))
            out.append(LemmaMatch(lemma, self.by_lemma[lemma], start, end))
        return sorted(out, key=lambda m: m.start)


@functools.lru_cache(maxsize=2)
def imagenet_index(info_dir: str | None = None) -> LemmaIndex:
    return LemmaIndex(load_imagenet_classes(info_dir))


def synset_candidates(matches: list[LemmaMatch]) -> tuple[str, tuple[int, ...], str]:
    """(status, candidate class ids, lemma) for a caption's matches:
    `none` (no lemma), `one` (all matches name one class), `ambiguous` (one shared lemma, several
    classes: decided later by the sentence model), `multiple` (lemmas of different classes)."""
    if not matches:
        return "none", (), ""
    sets = {m.class_ids for m in matches}
    if len(sets) == 1:
        ids = next(iter(sets))
        lemma = matches[0].lemma
        return ("one" if len(ids) == 1 else "ambiguous"), ids, lemma
    # Different lemmas: still one class if every match includes the same single class.
    common = set.intersection(*(set(s) for s in sets))
    if len(common) == 1:
        return "one", tuple(common), matches[0].lemma
    return "multiple", tuple(sorted(set().union(*sets))), matches[0].lemma
