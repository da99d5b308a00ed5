"""Alt texts for the sample web's images, and what each one tells a reader (for the reference CLIP)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .vocabulary import ALL_CONCEPTS, COLORS, SCENES, TRANSLATIONS

# (template, mentions colour, mentions scene)
ENGLISH_STYLES = (
    ("{A} {color} {concept} {scene}", 1, 1),
    ("{Color} {concept} {scene} | {site}", 1, 1),
    ("Photo of {a} {color} {concept} {scene}", 1, 1),
    ("{Concept} {scene} - stock photo", 0, 1),
    ("Buy {color} {concept} online at great prices", 1, 0),
    ("{A} {concept} I saw {scene} last weekend", 0, 1),
    ("{Concept} wallpaper HD free download", 0, 0),
    ("{color} {concept}", 1, 0),
    ("{concept}", 0, 0),
    ("my {color} {concept} {scene} #{tag} #photography", 1, 1),
)
ENGLISH_STYLE_P = np.array([0.22, 0.1, 0.12, 0.08, 0.08, 0.08, 0.06, 0.1, 0.08, 0.08])
COVID_STYLES = (
    ("{A} {color} {concept} during the covid-19 lockdown", 1, 0),
    ("Covid vaccine update: {concept} {scene}", 0, 1),
    ("Stay safe and wear a face mask {scene} #covid19", 0, 1),
    ("COVID-19 and the {concept}: what you need to know", 0, 0),
)
BOILERPLATE = ("image", "IMG_{n}.jpg", "click to enlarge", "thumbnail", "photo", "logo", "banner image",
               "untitled-{n}", "DSC{n}", "no image available")
STUFFING_WORDS = ("best", "cheap", "free", "online", "sale", "top", "new", "hd", "photo", "image", "wallpaper",
                  "2018", "deals", "buy", "review", "ideas", "design", "pictures", "gallery", "download")
CONCEPT_WEIGHT = {"en": 1.0, "de": 0.55, "fr": 0.55, "es": 0.55, "it": 0.55, "pt": 0.55, "nl": 0.55,
                  "ru": 0.1, "ja": 0.1, "zh": 0.1}


@dataclass
class CaptionBatch:
    text: list[str]
    mentions_color: np.ndarray
    mentions_scene: np.ndarray
    concept_weight: np.ndarray
    boilerplate: np.ndarray
    covid: np.ndarray
    huge: np.ndarray


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def make_captions(rng: np.random.Generator, concept: np.ndarray, color: np.ndarray, scene: np.ndarray,
                  language: list[str], covid: np.ndarray, site_names: list[str]) -> CaptionBatch:
    n = len(concept)
    style = rng.choice(len(ENGLISH_STYLES), size=n, p=ENGLISH_STYLE_P)
    covid_style = rng.integers(len(COVID_STYLES), size=n)
    foreign_style = rng.integers(1 << 30, size=n)
    boiler = rng.random(n) < 0.03
    huge = rng.random(n) < 0.001
    numbers = rng.integers(1000, 99999, size=n)
    stuffing = rng.integers(len(STUFFING_WORDS), size=(n, 8))
    # Plain lists and per-word lookups: this loop runs once per pair.
    concept_l, color_l, scene_l = concept.tolist(), color.tolist(), scene.tolist()
    style_l, covid_style_l, foreign_l = style.tolist(), covid_style.tolist(), foreign_style.tolist()
    boiler_l, huge_l, numbers_l, covid_l = boiler.tolist(), huge.tolist(), numbers.tolist(), covid.tolist()
    mentions_color, mentions_scene, weight = [0.0] * n, [0.0] * n, [0.0] * n
    texts = []
    for i in range(n):
        spec = ALL_CONCEPTS[concept_l[i]]
        lang = language[i]
        color_word, scene_phrase = COLORS[color_l[i]][0], SCENES[scene_l[i]]
        if boiler_l[i]:
            texts.append(BOILERPLATE[numbers_l[i] % len(BOILERPLATE)].format(n=numbers_l[i]))
            continue
        if lang != "en":
            tr = TRANSLATIONS[lang]
            tpl = tr["templates"][foreign_l[i] % len(tr["templates"])]
            texts.append(tpl.format(color=tr["colors"][color_l[i]], scene=tr["scenes"][scene_l[i]],
                                    concept=spec.phrase))
            mentions_color[i], mentions_scene[i], weight[i] = 0.5, 0.5, CONCEPT_WEIGHT[lang]
            continue
        weight[i] = 1.0
        if spec.kind == "off_sense":
            tpl = spec.phrases[foreign_l[i] % len(spec.phrases)]
            mentions_color[i], mentions_scene[i] = float("{color}" in tpl), float("{scene}" in tpl)
            text = tpl.format(color=color_word, scene=scene_phrase)
        else:
            tpl, mc, ms = COVID_STYLES[covid_style_l[i]] if covid_l[i] else ENGLISH_STYLES[style_l[i]]
            mentions_color[i], mentions_scene[i] = mc, ms
            phrase = spec.phrase
            text = tpl.format(
                A=_article(color_word if "{A} {color}" in tpl else phrase).capitalize(),
                a=_article(color_word if "{a} {color}" in tpl else phrase),
                color=color_word, Color=color_word.capitalize(), concept=phrase,
                Concept=phrase[:1].upper() + phrase[1:], scene=scene_phrase, site=site_names[i],
                tag=phrase.replace(" ", "").replace("-", "").lower())
        if huge_l[i]:
            words = " ".join(STUFFING_WORDS[j] for j in stuffing[i])
            text = text + " " + " ".join(f"{spec.phrase} {words}" for _ in range(40))
        texts.append(text)
    mentions_color, mentions_scene, weight = (np.array(x, np.float64) for x in (mentions_color, mentions_scene, weight))
    return CaptionBatch(texts, mentions_color, mentions_scene, weight, boiler, covid.astype(bool), huge)
