"""The one configuration object of a tic-train run (frozen; derived values are properties)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from ticcore.errors import InputError
from ticcore.validate import check_config_numbers, config_from_dict

from . import methods

METHODS = tuple(methods.METHODS)  # the method table's names, in its order
SCHEDULES = ("cosine", "const-cosine")


# (lo, hi[, lo_open]) of the numeric fields that have a range; every numeric field must be finite
NUMBER_RANGES = {"budget_macs": (0, None, True), "budget_samples": (1, None), "batch_size": (1, None),
                 "lr": (0, None, True), "weight_decay": (0, None), "warmup": (0, None), "warmup_later": (0, 1),
                 "lwf_weight": (0, None), "lwf_temperature": (0, None, True), "ewc_weight": (0, None),
                 "ewc_batches": (1, None), "workers": (0, None), "seed": (0, None), "checkpoint_every": (0, None),
                 "eval_batch_size": (1, None), "eval_cache_mb": (0, None), "max_steps": (1, None)}


@dataclass(frozen=True)
class TrainConfig:
    data: str                         # a tic-shards output
    out: str                          # the run directory
    method: str = "sequential"
    pool: str = "basic"               # training pool: unfiltered | basic | bestpool
    model: str = "tic-tiny"           # an open_clip model name, or a path to a model-config JSON
    init: str | None = None           # warm start: a checkpoint of `model` (e.g. `tic-train pretrain`'s original.pt)
    budget_macs: float | None = None  # total training MACs over all steps (split evenly)
    budget_samples: int | None = None  # or: total samples seen over all steps (converted with the MACs/sample)
    batch_size: int = 64              # global batch
    lr: float = 1e-3
    weight_decay: float = 0.1
    warmup: int = 50                  # warm-up iterations of the first step
    warmup_later: float = 0.0         # fraction of the first step's warm-up also used at every later step
    schedule: str = "cosine"
    lwf_weight: float = 1.0
    lwf_temperature: float = 1.0
    ewc_weight: float = 1000.0
    ewc_batches: int = 8              # batches for the diagonal Fisher estimate
    patching_alphas: tuple = (0.0, 0.25, 0.5, 0.75, 1.0)
    workers: int = 2
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"              # auto | cpu | cuda
    precision: str = "auto"           # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16
    compile: bool = False
    checkpoint_every: int = 200       # iterations between mid-step checkpoints (0: only at step ends)
    eval_batch_size: int = 256
    eval_cache_mb: int = 2048         # transformed evaluation images kept in memory between evaluations
    max_steps: int | None = None      # train only the first N steps (for quick runs)
    net_subtree: str = "motor_vehicle.n.01"
    steps_filter: tuple = ()          # explicit step labels to use (default: all found)

    def __post_init__(self):
        check_config_numbers(self, NUMBER_RANGES)
        if self.method not in METHODS:
            raise InputError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"--schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        if (self.budget_macs is None) == (self.budget_samples is None):
            raise InputError("give exactly one of --budget-macs and --budget-samples")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {self.batch_size}")
        object.__setattr__(self, "patching_alphas", tuple(self.patching_alphas))
        object.__setattr__(self, "steps_filter", tuple(self.steps_filter))

    @property
    def method_record(self) -> methods.Method:
        return methods.METHODS[self.method]

    @property
    def over_budget(self) -> bool:
        return self.method_record.over_budget

    @property
    def random_init_each_step(self) -> bool:
        return self.method_record.restart

    @property
    def out_dir(self) -> Path:
        return Path(self.out)

    def to_json(self) -> dict:
        d = asdict(self)
        d["patching_alphas"] = list(self.patching_alphas)
        d["steps_filter"] = list(self.steps_filter)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return config_from_dict(cls, d)

    @classmethod
    def from_yaml(cls, path: str, overrides: dict) -> "TrainConfig":
        try:
            d = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise InputError(f"{path}: cannot read the config ({exc.strerror or exc})") from None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
        if not isinstance(d, dict):
            raise InputError(f"{path}: a config must be a mapping of keys to values, not a {type(d).__name__}")
        d.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(d)


def load_run_config(run_dir: str | Path) -> TrainConfig:
    return TrainConfig.from_dict(json.loads((Path(run_dir) / "config.json").read_text()))
