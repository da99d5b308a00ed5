"""open_clip's own training entry point, with this project's model configs registered first.

    python -m training.open_clip_main --model tic-tiny --train-data 'STEP/{00000..00003}.tar' \
        --dataset-type webdataset --train-num-samples N ...

Everything else is `open_clip_train.main` unchanged (it ships inside the open_clip_torch wheel).
"""
from __future__ import annotations

import sys

from open_clip_train.main import main as open_clip_main

from .models import MODEL_CONFIGS, register_model_configs, tic_extras

__all__ = ["MODEL_CONFIGS", "main", "register_model_configs"]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    register_model_configs()
    model = next((argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "--model"), None)
    if model and tic_extras(model):  # open_clip's main would build the model without them, silently
        sys.exit(f"--model {model}: its config adds {sorted(tic_extras(model))} (training/models.py), which only "
                 "tic-train builds; train it with tic-train")
    open_clip_main(argv)


if __name__ == "__main__":
    main()
