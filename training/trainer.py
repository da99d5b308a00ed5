"""tic-train's trainer: continual CLIP training over time steps under one compute budget.

Read top to bottom: setup, then one loop over the steps. Each step composes the method's data
buffer, initialises the model (warm start or random), trains for the budgeted iterations
(with LwF's distillation or EWC's penalty when asked), patches (Patching), checkpoints,
evaluates on every year, and adds a row to the T x T matrices. Models, tokenizers, transforms
and the contrastive loss are open_clip's; data comes through webdataset (training/data.py).
A run resumes from its last checkpoint when the same command is run again.
"""
from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .budget import Ledger, Plan, forward_macs_per_sample, train_macs_per_sample
from .buffers import compose_buffer
from .config import TrainConfig
from .data import BufferStream, DataError, find_steps, load_eval_sets, step_uids, train_loader
from .evaluate import Pixels, evaluate
from .metrics import summarize, write_matrix_csv

MODEL_CONFIGS = Path(__file__).resolve().parent / "model_configs"


class RunError(ValueError):
    """A run that cannot go on (reported as one line)."""


# ------------------------------------------------------------------ small pieces the loop uses

def lr_at(it: int, total: int, base_lr: float, warmup: int, schedule: str) -> float:
    """Linear warm-up, then cosine to 0 (`cosine`), or constant then cosine over the last 20% (`const-cosine`)."""
    if it < warmup:
        return base_lr * (it + 1) / warmup
    if schedule == "const-cosine":
        start = max(warmup, int(total * 0.8))
        if it < start:
            return base_lr
        return 0.5 * base_lr * (1 + math.cos(math.pi * (it - start) / max(1, total - start)))
    return 0.5 * base_lr * (1 + math.cos(math.pi * (it - warmup) / max(1, total - warmup)))


def create_model(name: str, device):
    import open_clip

    open_clip.add_model_config(MODEL_CONFIGS)
    if name.endswith(".json"):
        path = Path(name)
        if not path.is_file():
            raise RunError(f"{name}: model config not found")
        open_clip.add_model_config(path)
        name = path.stem
    model, preprocess_train, preprocess_eval = open_clip.create_model_and_transforms(name, device=device)
    model.output_dict = True  # forward returns {"image_features", "text_features", "logit_scale"}
    return model, preprocess_train, preprocess_eval, open_clip.get_tokenizer(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def lwf_loss(student_out, teacher_out, temperature: float) -> torch.Tensor:
    """KL(teacher || student) between the image-text similarity distributions, both directions."""
    def logits(o):
        return o["logit_scale"] * o["image_features"] @ o["text_features"].T

    s, t = logits(student_out) / temperature, logits(teacher_out).detach() / temperature
    kl = lambda a, b: F.kl_div(F.log_softmax(a, dim=1), F.softmax(b, dim=1), reduction="batchmean")  # noqa: E731
    return 0.5 * (kl(s, t) + kl(s.T, t.T))


def interpolate(a: dict, b: dict, alpha: float) -> dict:
    """(1 - alpha) * a + alpha * b, parameter by parameter."""
    return {k: (1 - alpha) * a[k] + alpha * b[k] if a[k].is_floating_point() else b[k] for k in a}


def _unwrap(model):
    return getattr(model, "module", getattr(model, "_orig_mod", model))


# ------------------------------------------------------------------ the run

def run(cfg: TrainConfig, log=print) -> dict:
    # ---------------- setup: distributed, device, precision, output dir
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    device = torch.device("cuda" if (cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available()))
                          else "cpu")
    if world > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if device.type == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda")
    autocast = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if use_bf16 else contextlib.nullcontext
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    if world > 1 and cfg.batch_size % world:
        raise RunError(f"--batch-size {cfg.batch_size} is not divisible by the {world} processes")
    main_rank = rank == 0
    out = cfg.out_dir
    ckpt_dir = out / "checkpoints"
    if main_rank:
        _claim_run_dir(out, cfg)
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    say = log if main_rank else (lambda *_: None)

    # ---------------- data: steps, their uids, evaluation sets, zero-shot classes
    steps = find_steps(cfg.data, cfg.pool, cfg.steps_filter)
    if cfg.max_steps:
        steps = steps[:cfg.max_steps]
    labels = [s.label for s in steps]
    uids = [step_uids(s) for s in steps]
    eval_sets = load_eval_sets(cfg.data) if main_rank else {}
    net_path = Path(cfg.data) / "net_classes.json"
    net_doc = json.loads(net_path.read_text()) if net_path.is_file() else None
    if main_rank:
        _check_eval_sets(eval_sets, labels, cfg.data, net_doc)

    # ---------------- model, loss, budget
    seed_everything(cfg.seed)
    model, preprocess_train, preprocess_eval, tokenizer = create_model(cfg.model, device)
    pixels = Pixels(preprocess_eval, cfg.eval_cache_mb << 20)
    from open_clip.loss import ClipLoss

    loss_fn = ClipLoss(local_loss=False, gather_with_grad=True, rank=rank, world_size=world)
    image_size = model.visual.image_size if isinstance(model.visual.image_size, int) else model.visual.image_size[0]
    context = tokenizer.context_length
    macs = train_macs_per_sample(copy.deepcopy(model), ClipLoss(), image_size, context, device)
    teacher_macs = forward_macs_per_sample(model, image_size, context, device)
    plan = Plan.from_budget(macs, cfg.batch_size, len(steps), cfg.budget_macs, cfg.budget_samples)
    ledger = Ledger(plan.per_step_macs)
    say(f"[tic-train] {cfg.method} on {len(steps)} steps of {cfg.pool} ({', '.join(labels)}); "
        f"{macs:.4g} MACs/sample measured on {cfg.model}; C = {plan.per_step_macs:.4g} MACs/step = "
        f"{plan.iterations_per_step} iterations of {cfg.batch_size}")

    # ---------------- resume
    state = _load_state(out) if main_rank else {}
    if world > 1:
        state = _broadcast(state)
    rows: dict = state.get("rows", {})
    throughput: dict = state.get("throughput", {})
    done = state.get("done_steps", [])
    patched = None   # Patching: the previous patched weights
    ewc = None       # EWC: (fisher, anchor) accumulated over the finished steps
    if done:
        last = torch.load(ckpt_dir / f"step_{done[-1]}.pt", map_location=device, weights_only=False)
        _load_weights(model, last, ckpt_dir / f"step_{done[-1]}.pt", cfg.model)
        patched = last.get("patched")
        ewc = last.get("ewc")
        for e in state.get("ledger", []):
            ledger.entries.append(e)
        say(f"[tic-train] resuming after step {done[-1]}")
    if world > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    if cfg.compile:
        model = torch.compile(model)

    # ---------------- the steps
    for t, step in enumerate(steps):
        if step.label in done:
            continue
        step_seed = cfg.seed * 1000 + t
        seed_everything(step_seed)
        buffer = compose_buffer(cfg.method, uids, labels, t, cfg.seed)
        if main_rank:
            _write_buffer(out / "buffers" / f"step_{step.label}.parquet", buffer)
        if cfg.random_init_each_step:
            fresh = create_model(cfg.model, device)[0]
            _unwrap(model).load_state_dict(fresh.state_dict())
        teacher = copy.deepcopy(_unwrap(model)).eval() if cfg.method == "lwf" and t > 0 else None
        if teacher is not None:
            for p in teacher.parameters():
                p.requires_grad_(False)
        iters = plan.iterations_per_step * (t + 1 if cfg.method == "oracle" else 1)
        first_like = t == 0 or cfg.random_init_each_step
        warmup = cfg.warmup if first_like else int(cfg.warmup * cfg.warmup_later)
        warmup = min(warmup, max(0, iters - 1))
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr,
                                      betas=(0.9, 0.98), eps=1e-6, weight_decay=cfg.weight_decay)
        start_it = 0
        partial = ckpt_dir / "partial.pt"
        if partial.is_file():
            ck = torch.load(partial, map_location=device, weights_only=False)
            if ck.get("step") == step.label:
                _load_weights(_unwrap(model), ck, partial, cfg.model)
                optimizer.load_state_dict(ck["optimizer"])
                start_it = ck["iteration"]
                teacher = ck.get("teacher_model", teacher)
                say(f"[tic-train] resuming step {step.label} at iteration {start_it}")

        shards = [sh for s in steps[:t + 1] for sh in s.shards]
        stream = BufferStream(shards, {u for u, _ in buffer}, iters * cfg.batch_size, step_seed, preprocess_train,
                              tokenizer, rank, world)
        loader = train_loader(stream, cfg.batch_size // world, cfg.workers)
        model.train()
        wait = busy = 0.0
        # Throughput is also measured without the first iterations (worker start-up, allocator warm-up),
        # the same window open_clip_train's per-log meters give, so perf/bench_train.py compares like with like.
        skip = start_it + min(10, (iters - start_it) // 5)
        steady_wait = steady_busy = 0.0
        from tqdm import tqdm

        bar = tqdm(total=iters, initial=start_it, disable=not main_rank, unit="it", dynamic_ncols=True,
                   desc=f"{cfg.method} step {t + 1}/{len(steps)} ({step.label})")
        it = 0
        t_mark = time.perf_counter()
        for images, texts in loader:
            if it < start_it:  # replaying the stream up to where the interrupted run stopped
                it += 1
                t_mark = time.perf_counter()
                continue
            t_data = time.perf_counter()
            waited = t_data - t_mark
            wait += waited
            for group in optimizer.param_groups:
                group["lr"] = lr_at(it, iters, cfg.lr, warmup, cfg.schedule)
            images, texts = images.to(device, non_blocking=True), texts.to(device, non_blocking=True)
            with autocast():
                outs = model(images, texts)
                loss = loss_fn(outs["image_features"], outs["text_features"], outs["logit_scale"])
                if teacher is not None:
                    with torch.no_grad():
                        t_outs = teacher(images, texts)
                    loss = loss + cfg.lwf_weight * lwf_loss(outs, t_outs, cfg.lwf_temperature)
                if ewc is not None and cfg.method == "ewc":
                    loss = loss + cfg.ewc_weight / 2 * sum(
                        (ewc["fisher"][n] * (p - ewc["anchor"][n]) ** 2).sum()
                        for n, p in _unwrap(model).named_parameters() if n in ewc["fisher"])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():  # CLIP clamps its temperature
                _unwrap(model).logit_scale.clamp_(0, math.log(100))
            it += 1
            if it % 10 == 0 or it == iters:  # .item() synchronises a GPU; not every iteration
                bar.set_postfix(loss=f"{loss.item():.3f}",
                                samples_s=f"{cfg.batch_size * (it - start_it) / max(wait + busy, 1e-9):.0f}")
            t_mark = time.perf_counter()
            busy += t_mark - t_data
            if it > skip:
                steady_wait += waited
                steady_busy += t_mark - t_data
            bar.update(1)
            if main_rank and cfg.checkpoint_every and it % cfg.checkpoint_every == 0 and it < iters:
                _save(partial, {"step": step.label, "iteration": it, "model": _unwrap(model).state_dict(),
                                "optimizer": optimizer.state_dict(), "model_name": cfg.model,
                                "teacher_model": teacher})
        bar.close()
        if it < iters:
            raise DataError(f"{step.dir}: the data stream ended after {it} of {iters} iterations")
        ledger.spend(step.label, "training", iters * cfg.batch_size * macs)
        if teacher is not None:
            ledger.spend(step.label, "lwf teacher forward", iters * cfg.batch_size * teacher_macs)

        # ---------------- method-specific work at the end of a step
        if cfg.method == "ewc":
            ewc = _update_fisher(_unwrap(model), ewc, loader, loss_fn, cfg, device, autocast)
            ledger.spend(step.label, "ewc fisher", cfg.ewc_batches * cfg.batch_size * macs)
        alpha = None
        if cfg.method == "patching" and main_rank:
            finetuned = {k: v.detach().clone() for k, v in _unwrap(model).state_dict().items()}
            if patched is not None:
                alpha = _tune_patching(_unwrap(model), patched, finetuned, cfg, eval_sets, labels[:t + 1], net_doc,
                                       pixels, tokenizer, device, autocast)
                _unwrap(model).load_state_dict(interpolate(patched, finetuned, alpha))
            patched = {k: v.detach().clone() for k, v in _unwrap(model).state_dict().items()}
        if world > 1:
            _sync_weights(model)
        ledger.check(step.label, cfg.method, cfg.over_budget)

        # ---------------- checkpoint, evaluate, record
        if main_rank:
            _save(ckpt_dir / f"step_{step.label}.pt", {"step": step.label, "model": _unwrap(model).state_dict(),
                                                        "model_name": cfg.model, "patched": patched, "ewc": ewc})
            partial.unlink(missing_ok=True)
            res = evaluate(_unwrap(model), pixels, tokenizer, eval_sets, net_doc, cfg.net_subtree, device,
                           cfg.eval_batch_size, autocast)
            _record(rows, res, labels, t, cfg.net_subtree)
            done.append(step.label)
            steady = steady_wait + steady_busy
            throughput[step.label] = {
                "iterations": it - start_it, "seconds": round(wait + busy, 3),
                "samples_per_s": round(cfg.batch_size * (it - start_it) / max(wait + busy, 1e-9), 2),
                "data_wait": round(wait / max(wait + busy, 1e-9), 4),
                "steady_iterations": max(0, it - skip),
                "steady_samples_per_s": round(cfg.batch_size * max(0, it - skip) / steady, 2) if steady else None,
                "steady_data_wait": round(steady_wait / steady, 4) if steady else None}
            _save_state(out, {"done_steps": done, "rows": rows, "ledger": ledger.entries, "throughput": throughput})
            say(f"[tic-train] step {step.label}: {iters} iterations, data wait {wait / max(wait + busy, 1e-9):.1%}"
                + (f", patching alpha {alpha}" if alpha is not None else "") + "; " + _row_summary(rows, t))
        if world > 1:
            torch.distributed.barrier()

    # ---------------- results
    result = {}
    if main_rank:
        result = _write_results(out, cfg, rows, labels, ledger, plan, throughput)
        say(ledger.table())
    if world > 1:
        torch.distributed.barrier()
    return result


# ------------------------------------------------------------------ helpers of the loop

def _claim_run_dir(out: Path, cfg: TrainConfig) -> None:
    cfg_path = out / "config.json"
    if cfg_path.is_file():
        try:  # keys added since the run started take their defaults
            old = TrainConfig.from_dict(json.loads(cfg_path.read_text())).to_json()
        except (ValueError, TypeError) as exc:
            raise RunError(f"{cfg_path}: not a config this tic-train can resume ({exc})") from None
        if old != cfg.to_json():
            diff = sorted(k for k in set(old) | set(cfg.to_json()) if old.get(k) != cfg.to_json().get(k))
            raise RunError(f"{out}: holds a run with another config (differs in {', '.join(diff)}); "
                           "use a new --out to start a different run")
        return
    if out.exists() and any(out.iterdir()):
        raise RunError(f"{out}: exists and is not a tic-train run directory; refusing to use it")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(cfg_path, json.dumps(cfg.to_json(), indent=1, sort_keys=True) + "\n")


def _check_eval_sets(eval_sets: dict, labels: list[str], data: str, net_doc: dict | None) -> None:
    """The evaluation sets must fit the steps and the class list they are scored with."""
    root = Path(data) / "eval"
    if not eval_sets.get("retrieval"):
        raise DataError(f"{root / 'retrieval'}: no retrieval evaluation sets")
    covered = {_step_of_year(y, labels) for y in eval_sets["retrieval"]}
    for i, label in enumerate(labels):
        if i not in covered:
            raise DataError(f"{root / 'retrieval'}: no evaluation year for step {label} "
                            f"(years {', '.join(sorted(eval_sets['retrieval']))}; mismatched eval sets?)")
    known = {c["class_id"] for c in net_doc["classes"]} if net_doc else None
    for task, sets in eval_sets.items():
        for name, es in sets.items():
            where = root / task / name if task != "static" else root / task
            if not es.uids:
                raise DataError(f"{where}: empty evaluation set")
            if task in ("net", "static"):
                ids = [m.get("class_id") for m in es.meta]
                if any(c is None for c in ids):
                    raise DataError(f"{where}: evaluation samples without class_id (a mismatched eval set?)")
                if known is not None and not set(ids) <= known:
                    bad = sorted(set(ids) - known)[:5]
                    raise DataError(f"{where}: class ids {bad} are not in {Path(data) / 'net_classes.json'} "
                                    "(eval set and class list from different builds?)")


def atomic_write(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _save(path: Path, obj: dict) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def load_fitting_state(model, state: dict, path: Path, model_name: str) -> None:
    """Load `state` only if it has exactly the model's keys and shapes (RunError naming one that does not)."""
    own = model.state_dict()
    bad = [k for k, v in state.items() if k not in own or own[k].shape != v.shape]
    missing = sorted(set(own) - set(state))
    if bad or missing:
        raise RunError(f"{path}: checkpoint does not fit model {model_name!r} (e.g. {(bad or missing)[0]})")
    model.load_state_dict(state)


def _load_weights(model, ckpt: dict, path: Path, model_name: str) -> None:
    if ckpt.get("model_name") != model_name:
        raise RunError(f"{path}: a checkpoint of model {ckpt.get('model_name')!r}, not {model_name!r}")
    load_fitting_state(model, ckpt["model"], path, model_name)


def _load_state(out: Path) -> dict:
    p = out / "state.json"
    return json.loads(p.read_text()) if p.is_file() else {}


def _save_state(out: Path, state: dict) -> None:
    atomic_write(out / "state.json", json.dumps(state, indent=1) + "\n")


def _broadcast(obj):
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def _sync_weights(model) -> None:
    for p in _unwrap(model).state_dict().values():
        torch.distributed.broadcast(p, src=0)


def _write_buffer(path: Path, buffer: list[tuple[str, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(pa.table({"uid": [u for u, _ in buffer], "source_step": [s for _, s in buffer]}), tmp)
    tmp.replace(path)


def _update_fisher(model, ewc, loader, loss_fn, cfg, device, autocast) -> dict:
    """Diagonal Fisher of this step's loss (squared gradients over a few batches), summed over steps."""
    fisher = {n: torch.zeros_like(p) for n, p in model.named_parameters() if p.requires_grad}
    seen = 0
    for images, texts in loader:
        model.zero_grad(set_to_none=True)
        with autocast():
            o = model(images.to(device), texts.to(device))
            loss_fn(o["image_features"], o["text_features"], o["logit_scale"]).backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                fisher[n] += p.grad.detach() ** 2
        seen += 1
        if seen >= cfg.ewc_batches:
            break
    model.zero_grad(set_to_none=True)
    fisher = {n: f / max(seen, 1) for n, f in fisher.items()}
    if ewc is not None:
        fisher = {n: fisher[n] + ewc["fisher"][n] for n in fisher}
    anchor = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    return {"fisher": fisher, "anchor": anchor}


def _tune_patching(model, patched, finetuned, cfg, eval_sets, labels_so_far, net_doc, pixels, tokenizer,
                   device, autocast) -> float:
    """The alpha whose interpolation scores best on the mean retrieval of steps 1..t (the previous steps'
    sets, and the current one: on the previous ones alone alpha = 0, no update, would always win)."""
    years = {y for y in eval_sets.get("retrieval", {}) if _step_of_year(y, labels_so_far) is not None}
    sets = {"retrieval": {y: eval_sets["retrieval"][y] for y in years}}
    best, best_score = cfg.patching_alphas[0], -1.0
    for alpha in cfg.patching_alphas:
        model.load_state_dict(interpolate(patched, finetuned, alpha))
        res = evaluate(model, pixels, tokenizer, sets, None, cfg.net_subtree, device, cfg.eval_batch_size, autocast)
        score = float(np.mean([r.get("all", 0.0) for r in res["retrieval"].values()])) if res else 0.0
        if score > best_score:
            best, best_score = alpha, score
    return best


def _step_of_year(year: str, labels: list[str]) -> int | None:
    """The index of the step an evaluation year belongs to (earlier years fold into the first step)."""
    y = int(str(year)[:4])
    for i, label in enumerate(labels):
        if y <= int(label[:4]):
            return i
    return None


TASKS = {  # matrix name -> (result task, key)
    "retrieval": ("retrieval", "all"),
    "retrieval_covid": ("retrieval", "covid"),
    "retrieval_flickr": ("retrieval", "flickr"),
    "net": ("net", "acc"),
}


def _record(rows: dict, res: dict, labels: list[str], t: int, subtree: str) -> None:
    """Add step t's row to every matrix (one column per step: the mean over that step's years)."""
    tasks = dict(TASKS)
    tasks[f"net_{subtree}"] = ("net", f"acc_{subtree}")
    for name, (task, key) in tasks.items():
        per_step: dict[int, list] = {}
        by_year = {}
        for year, r in res.get(task, {}).items():
            if key in r:
                by_year[year] = r[key]
                j = _step_of_year(year, labels)
                if j is not None:
                    per_step.setdefault(j, []).append(r[key])
        if not by_year:
            continue
        m = rows.setdefault(name, {"steps": [], "by_year": {}})
        m["steps"].append([float(np.mean(per_step[j])) if j in per_step else float("nan") for j in range(len(labels))])
        m["by_year"][labels[t]] = by_year
    static = res.get("static", {}).get("all")
    if static:
        rows.setdefault("static", {"steps": [], "by_year": {}})["steps"].append([static["acc"]])


def _row_summary(rows: dict, t: int) -> str:
    parts = []
    for name in ("retrieval", "net", "static"):
        if name in rows and rows[name]["steps"]:
            row = rows[name]["steps"][-1]
            parts.append(f"{name} {row[t] if name != 'static' else row[0]:.2f}")
    return ", ".join(parts)


def _write_results(out: Path, cfg: TrainConfig, rows: dict, labels: list[str], ledger: Ledger, plan: Plan,
                   throughput: dict) -> dict:
    from .report import heatmap

    metrics = {"method": cfg.method, "pool": cfg.pool, "steps": labels,
               "macs_per_sample": plan.macs_per_sample, "per_step_budget_macs": plan.per_step_macs,
               "iterations_per_step": plan.iterations_per_step,
               "total_macs": sum(e["macs"] for e in ledger.entries),
               "over_budget": cfg.over_budget, "throughput": throughput, "tasks": {}}
    for name, m in rows.items():
        if name == "static":
            metrics["static"] = {"per_step": [r[0] for r in m["steps"]], "final": m["steps"][-1][0]}
            continue
        E = np.array(m["steps"], dtype=float)
        if E.shape[0] == len(labels):
            write_matrix_csv(out / f"matrix_{name}.csv", E)
            heatmap(E, labels, f"{cfg.method}: {name}", out / f"heatmap_{name}.png")
            metrics["tasks"][name] = {**summarize(E), "matrix": E.tolist(), "by_year": m["by_year"]}
    atomic_write(out / "metrics.json", json.dumps(metrics, indent=1) + "\n")
    atomic_write(out / "ledger.json", json.dumps(ledger.entries, indent=1) + "\n")
    return metrics
