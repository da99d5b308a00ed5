"""Zero-shot class prompts (CLIP's ImageNet templates, as open_clip ships them)."""
from __future__ import annotations

from benchmarks.wordnet import subtree_class_ids
from ticcore.imagenet import load_imagenet_classes


def imagenet_classnames() -> list[str]:
    """OpenAI's curated ImageNet-1K class names (index = class id)."""
    # open_clip imports torch (3.6 s cold on this machine): only the Net class document needs these
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return list(IMAGENET_CLASSNAMES)


def templates(kind: str = "simple") -> list[str]:
    """The templates as format strings with one `{}` for the class name: `simple` (7) or `openai` (80)."""
    # open_clip imports torch (3.6 s cold on this machine): see imagenet_classnames
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    chosen = SIMPLE_IMAGENET_TEMPLATES if kind == "simple" else OPENAI_IMAGENET_TEMPLATES
    return [t("{}") for t in chosen]


def class_prompts(names: list[str], kind: str = "simple") -> list[list[str]]:
    return [[t.format(name) for t in templates(kind)] for name in names]


def net_classes_doc(subtrees, kind: str) -> dict:
    """tic-splits' net_classes.json: the templates, each subtree's class ids, and every class with its prompts."""
    classes = load_imagenet_classes()
    names = imagenet_classnames()
    trees = {node: subtree_class_ids(node, classes) for node in subtrees}
    return {"templates": templates(kind),
            "subtrees": trees,
            "classes": [{"class_id": c.class_id, "wnid": c.wnid, "name": names[c.class_id], "lemmas": list(c.lemmas),
                         "definition": c.definition, "prompts": p}
                        for c, p in zip(classes, class_prompts(names, kind))]}
