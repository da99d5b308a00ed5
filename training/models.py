"""Models and checkpoints, shared by tic-train, AnytimeCL, `tic-train embed` and training/open_clip_main.py.

This project's open_clip model configs (training/model_configs, found through ticcore.pkgdata) are
registered here and nowhere else; `create_model` builds a model with its transforms and tokenizer;
a checkpoint is loaded only when it fits the model exactly; checkpoints are written atomically.
"""
from __future__ import annotations

import io
from pathlib import Path

import torch

from ticcore.errors import UserError
from ticcore.outputs import atomic_file
from ticcore.pkgdata import package_path

MODEL_CONFIGS = package_path("training", "model_configs")


class RunError(UserError):
    """A run that cannot go on (reported as one line)."""


class CheckpointError(UserError):
    """A checkpoint file that cannot be read or does not fit its model."""


# A model config may carry {"tic_clip": {"conv_stem": true}}: open_clip's CLIP(**cfg) takes no such key, so it is
# taken out of open_clip's registry when the configs are (re)scanned and applied by create_model.
TIC_CONFIG_KEY = "tic_clip"


def _register(open_clip, path: Path) -> None:
    """Add model config file(s) to open_clip's registry, keeping this project's own keys out of it."""
    open_clip.add_model_config(path)
    registry = open_clip.factory._MODEL_CONFIGS  # rebuilt from the files on every add_model_config
    for name, cfg in registry.items():
        extra = cfg.pop(TIC_CONFIG_KEY, None)
        if extra is not None:
            _TIC_EXTRAS[name] = extra


_TIC_EXTRAS: dict[str, dict] = {}


def tic_extras(name: str) -> dict:
    """This project's additions to a registered model config (e.g. {"conv_stem": True}), {} when none."""
    _open_clip()
    return dict(_TIC_EXTRAS.get(Path(name).stem if name.endswith(".json") else name, {}))


def _open_clip():
    """open_clip, with this project's model configs registered.

    Imported here, not at the top: open_clip imports transformers, which more than doubles the start-up of a
    process that has imported torch (measured: `python -c "import torch"` 13.4-14.1 s, `import torch, open_clip`
    42-47 s on the loaded 2-core build machine; python -X importtime puts open_clip at 31.7 s cumulative, torch
    at 12.2 s). `tic-train --help`, `metrics` and `report` never build a model and do not pay it."""
    import open_clip

    if MODEL_CONFIGS not in open_clip.factory._MODEL_CONFIG_PATHS:
        _register(open_clip, MODEL_CONFIGS)
    return open_clip


def register_model_configs() -> None:
    _open_clip()


def contrastive_loss(rank: int = 0, world: int = 1):
    """open_clip's CLIP loss (gathering the features of all processes when there are several)."""
    return _open_clip().loss.ClipLoss(local_loss=False, gather_with_grad=True, rank=rank, world_size=world)


def create_model(name: str, device):
    """(model, train transform, eval transform, tokenizer) of an open_clip model name or model-config JSON."""
    open_clip = _open_clip()
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise RunError(f"{name}: model config not found")
        _register(open_clip, path)
        name = path.stem
    model, preprocess_train, preprocess_eval = open_clip.create_model_and_transforms(name, device=device)
    if _TIC_EXTRAS.get(name, {}).get("conv_stem"):
        visual = model.visual
        visual.conv1 = ConvStem(visual.conv1.out_channels, visual.conv1.kernel_size[0]).to(device)
    model.output_dict = True  # forward returns {"image_features", "text_features", "logit_scale"}
    return model, preprocess_train, preprocess_eval, open_clip.get_tokenizer(name)


class ConvStem(torch.nn.Module):
    """A ViT's patchify convolution replaced by stride-2 3x3 convolutions down to the same patch grid (Xiao et al.
    2021, "Early convolutions help transformers see better", arXiv:2106.14881), so the token shapes, the
    transformer and `VisionTransformer._embeds` (which AnytimeCL calls) stay as they are.

    Why: on the sample web a plain 4-layer ViT learned no concept from scratch on CPU (supervised probe: 1.6% after
    24k samples), the same ViT with this stem 12.3%; contrastively, tic-pico with the stem reached 65% static
    zero-shot after 440k samples (issue 26's probe)."""

    CHANNELS = (32, 64, 128, 256)

    def __init__(self, width: int, patch_size: int):
        super().__init__()
        if patch_size & (patch_size - 1) or not 2 <= patch_size <= 2 ** len(self.CHANNELS):
            raise RunError(f"a conv stem needs a patch size that is a power of two up to {2 ** len(self.CHANNELS)}, "
                           f"not {patch_size}")
        layers, channels = [], 3
        for out in self.CHANNELS[:patch_size.bit_length() - 1]:
            layers += [torch.nn.Conv2d(channels, out, 3, 2, 1, bias=False), torch.nn.BatchNorm2d(out),
                       torch.nn.ReLU(inplace=True)]
            channels = out
        layers.append(torch.nn.Conv2d(channels, width, 1))
        self.net = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def unwrap(model):
    """The model under a DDP or torch.compile wrapper."""
    return getattr(model, "module", getattr(model, "_orig_mod", model))


def load_fitting_state(model, state: dict, path: Path, model_name: str) -> None:
    """Load `state` only if it has exactly the model's keys and shapes (RunError naming one that does not)."""
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    missing = sorted(set(own) - set(state))
    if bad or missing:
        raise RunError(f"{path}: checkpoint does not fit model {model_name!r} (e.g. {(bad or missing)[0]})")
    model.load_state_dict(state)


def load_weights(model, ckpt: dict, path: Path, model_name: str) -> None:
    """A tic-train checkpoint's weights, when it names `model_name` and fits it."""
    if ckpt.get("model_name") != model_name:
        raise RunError(f"{path}: a checkpoint of model {ckpt.get('model_name')!r}, not {model_name!r}")
    load_fitting_state(model, ckpt["model"], path, model_name)


def save_checkpoint(path: Path, obj: dict) -> None:
    with atomic_file(path) as tmp:
        torch.save(obj, tmp)


def read_checkpoint(path: Path) -> tuple[bytes, dict, str | None]:
    """(the file's bytes, its state dict without DDP's "module." prefix, the model name it records or None)
    of a tic-train checkpoint, an open_clip_train checkpoint or a bare state dict."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    raw = path.read_bytes()
    try:
        ckpt = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise CheckpointError(f"{path}: not a readable torch checkpoint ({type(exc).__name__}: {exc})") from None
    if isinstance(ckpt, dict) and "model" in ckpt:           # tic-train
        state, named = ckpt["model"], ckpt.get("model_name")
    elif isinstance(ckpt, dict) and "state_dict" in ckpt:    # open_clip_train
        state, named = ckpt["state_dict"], None
    elif isinstance(ckpt, dict):
        state, named = ckpt, None
    else:
        raise CheckpointError(f"{path}: holds no state dict")
    return raw, {k.removeprefix("module."): v for k, v in state.items()}, named


def model_from_checkpoint(path: Path, state: dict, name: str, device):
    """(model, eval transform, tokenizer) of model `name` holding `state`; CheckpointError when it cannot."""
    try:
        model, _, preprocess_eval, tokenizer = create_model(name, device)
    except (RunError, RuntimeError) as exc:
        raise CheckpointError(f"{name}: cannot build the model ({exc})") from None
    try:
        load_fitting_state(model, state, path, name)
    except RunError as exc:
        raise CheckpointError(str(exc)) from None
    return model.to(device), preprocess_eval, tokenizer
