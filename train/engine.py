"""The training loop: one process per device, DistributedDataParallel under torchrun, resumable.

Data path: images are decoded once into a uint8 memory-map (edge_age.data.decoded_cache); a batch is
gathered with one fancy-index, moved to the device, augmented there with kornia and normalised as the
model's input spec says. Rank 0 writes the run folder; every rank evaluates the same validation set,
so scheduler and early-stopping decisions agree without communication.
"""
from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

from edge_age.augment import build_augmentation
from edge_age.checkpoint import load_checkpoint, load_model, save_checkpoint
from edge_age.data import (MAX_BIN_AGE, CachedBatches, LabelledImages, apply_split, decoded_cache, load_labelled,
                           load_split, make_split, resolve_data_dir, save_split)
from edge_age.inference import predict
from edge_age.io import atomic_write_json, atomic_write_text, sha256_file
from edge_age.machine import describe_machine, runtime_versions
from edge_age.manifest import relative_to_folder
from edge_age.metrics import summarize, with_interval
from edge_age.registry import AgeGenderModel, create_model
from edge_age.train.curves import plot_learning_curves
from edge_age.train.distill import load_teachers
from edge_age.train.source_run import load_source_model

METRICS_COLUMNS = ["epoch", "phase", "lr", "train_loss", "train_age_mae", "train_gender_acc", "val_loss", "val_age_mae",
                   "val_gender_acc", "images_per_s", "data_wait_share", "augment_share", "epoch_seconds"]
RUN_FILES = ["config.json", "split.json", "metrics.csv", "last.pt", "best.pt", "test_metrics.json",
             "learning_curves.png"]


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class RunOptions:
    """Everything a run needs besides the recipe."""

    out_dir: Path
    data: str | None = None
    labels_csv: str | None = None
    device: str = "auto"
    seed: int | None = None  # None: 0 for a new run, the run's own seed on --resume
    resume: bool = False
    force: bool = False
    compile: bool = False
    workers: int = 0
    backbone_weights: str | None = None
    pretrained: bool = False
    eval_batch_size: int = 128
    resume_epochs: int | None = None  # --resume --epochs N: the resumed run's phases last N epochs
    split_file: str | None = None  # --split: train on this split.json's parts instead of drawing one from the seed
    score_test: bool = True  # False (--no-test): keep the test split unscored until a later --resume, to choose blind


# ---------------------------------------------------------------- devices and processes

@dataclass
class Processes:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def start_processes(device_flag: str) -> tuple[Processes, torch.device]:
    """Read torchrun's environment (single process without it) and pick this process's device."""
    if device_flag not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, got {device_flag!r}")
    if device_flag == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA GPU is visible to PyTorch on this machine; use --device cpu or auto")
    use_cuda = device_flag == "cuda" or (device_flag == "auto" and torch.cuda.is_available())
    procs = Processes(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                      int(os.environ.get("LOCAL_RANK", 0)))
    if procs.world > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(procs.local_rank)
        return procs, torch.device("cuda", procs.local_rank)
    # Share the cores between the processes of this machine; leave none idle, oversubscribe none.
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", procs.world))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    return procs, torch.device("cpu")


# ---------------------------------------------------------------- losses, optimisers, schedules

LOSS_TERMS = ("age_l1", "age_ce", "age_ldl", "gender_bce")
#: the age readings a 101-bin model returns beside "age" (OUTPUT_MEANINGS), reported per epoch and in test metrics
AGE_READINGS = ("age_expectation", "age_median", "age_regression")


def gaussian_age_targets(ages: torch.Tensor, sigma: float) -> torch.Tensor:
    """Label-distribution targets (Geng et al.): a Gaussian of width ``sigma`` years around each true age,
    over the 101 bins, normalised. Neighbouring ages look alike, so a near miss should cost little."""
    bins = torch.arange(MAX_BIN_AGE + 1, device=ages.device, dtype=torch.float32)
    logits = -0.5 * ((bins.view(1, -1) - ages.clamp(0, MAX_BIN_AGE).view(-1, 1)) / sigma) ** 2
    return torch.softmax(logits, dim=1)


def compute_loss(out: dict, ages: torch.Tensor, genders: torch.Tensor, weights: dict,
                 model: AgeGenderModel, label_sigma: float = 2.0, teacher: dict | None = None) -> torch.Tensor:
    """The recipe's weighted sum of age_l1 / age_ce / age_ldl / gender_bce, plus any L2 term the model defines.
    ``teacher`` (train.distill.Teachers.soft_targets) mixes its answers into the age_ldl and gender_bce targets."""
    unknown = set(weights) - set(LOSS_TERMS)
    if unknown:
        raise ValueError(f"unknown loss term(s) {sorted(unknown)}; use {', '.join(LOSS_TERMS)}")
    loss = torch.zeros((), device=ages.device)
    if weights.get("age_l1"):
        # the regression neuron, else the expectation (differentiable everywhere, unlike the median), else "age"
        regression = out.get("age_regression", out.get("age_expectation", out["age"])).float()
        loss = loss + weights["age_l1"] * (regression - ages).abs().mean()
    if weights.get("age_ce"):
        if "age_logits" not in out:
            raise ValueError(f"loss term age_ce needs a 101-bin age head; {model.model_name} has none")
        target = ages.round().clamp(0, MAX_BIN_AGE).long()  # ages over 100 fall in the last bin
        loss = loss + weights["age_ce"] * F.cross_entropy(out["age_logits"].float(), target)
    if weights.get("age_ldl"):
        if "age_logits" not in out:
            raise ValueError(f"loss term age_ldl needs a 101-bin age head; {model.model_name} has none")
        target = gaussian_age_targets(ages.float(), label_sigma)
        if teacher is not None:
            target = (1 - teacher["weight"]) * target + teacher["weight"] * teacher["age_probs"]
        log_probs = F.log_softmax(out["age_logits"].float(), dim=1)
        loss = loss + weights["age_ldl"] * -(target * log_probs).sum(dim=1).mean()
    if weights.get("gender_bce"):
        target = genders if teacher is None else (1 - teacher["weight"]) * genders + teacher["weight"] * teacher["gender_prob"]
        loss = loss + weights["gender_bce"] * F.binary_cross_entropy_with_logits(out["gender_logit"].float(), target)
    if hasattr(model, "regularization_loss"):
        loss = loss + model.regularization_loss()
    return loss


def mix_batch(x: torch.Tensor, ages: torch.Tensor, genders: torch.Tensor, alpha: float):
    """Mixup (Zhang et al., ICLR 2018): every face of the batch blended with another one, by a weight drawn from
    Beta(alpha, alpha) for the batch. Returns the blended images, each face's partner's labels and the weight of
    its own; the loss is weight x loss(own labels) + (1 - weight) x loss(partner's), which for the
    label-distribution and gender cross-entropies is the loss against the blended targets. A regulariser for a
    model that learns the training faces by heart (train MAE falling far below validation MAE)."""
    weight = float(torch.distributions.Beta(alpha, alpha).sample())
    weight = max(weight, 1 - weight)  # a face's own labels weigh most, so the epoch's train MAE reads against them
    partner = torch.randperm(len(x), device=x.device)
    return weight * x + (1 - weight) * x[partner], ages[partner], genders[partner], weight


OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}


def make_optimizer(model: AgeGenderModel, phase: dict) -> torch.optim.Optimizer:
    """Adam (the seeds') or AdamW; ``lr_mult`` scales the rate of each of the model's parameter groups
    (e.g. {"backbone": 0.1} for an ImageNet-initialised trunk)."""
    name = phase.get("optimizer", "adam")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}: use {', '.join(OPTIMIZERS)}")
    multipliers = phase.get("lr_mult", {})
    groups = model.parameter_groups()
    unknown = set(multipliers) - set(groups)
    if unknown:
        raise ValueError(f"lr_mult names {sorted(unknown)}, but {model.model_name}'s parameter groups are {sorted(groups)}")
    param_groups = [{"params": params, "lr": phase["lr"] * multipliers.get(group, 1.0), "name": group}
                    for group, params in groups.items() if params]
    return OPTIMIZERS[name](param_groups, lr=phase["lr"], betas=tuple(phase.get("betas", (0.9, 0.999))),
                            weight_decay=phase.get("weight_decay", 0.0))


def make_scheduler(optimizer: torch.optim.Optimizer, spec: dict | None, epochs: int = 1, steps_per_epoch: int = 1):
    """plateau and step act once an epoch; cosine (with linear warm-up) once a batch (``scheduler.per_batch``)."""
    if not spec:
        return None
    if spec["type"] == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=spec["factor"],
                                                          patience=spec["patience"], min_lr=spec["min_lr"])
    if spec["type"] == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=spec["every"], gamma=spec["gamma"])
    if spec["type"] == "cosine":
        total = max(1, epochs * steps_per_epoch)
        warmup = min(total - 1, int(spec.get("warmup_epochs", 0) * steps_per_epoch))
        floor = spec.get("final_lr_fraction", 0.0)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            progress = (step - warmup) / max(1, total - warmup)
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        scheduler.per_batch = True
        return scheduler
    raise ValueError(f"unknown scheduler type {spec['type']!r}: use plateau, step or cosine")


def make_ema(model: AgeGenderModel, decay: float | None):
    """An exponential moving average of the weights (and BatchNorm statistics), or None. Validation, best.pt
    and the test use the average: it is smoother than the weights of the last step."""
    if not decay:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


class EarlyStopping:
    """Keras-style: stop after ``patience`` epochs without a lower validation loss."""

    def __init__(self, patience: int | None):
        self.patience, self.best, self.bad_epochs = patience, math.inf, 0

    def update(self, val_loss: float) -> None:
        if val_loss < self.best:
            self.best, self.bad_epochs = val_loss, 0
        else:
            self.bad_epochs += 1

    @property
    def should_stop(self) -> bool:
        return self.patience is not None and self.bad_epochs >= self.patience

    def state_dict(self) -> dict:
        return {"best": self.best, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.best, self.bad_epochs = float(state["best"]), int(state["bad_epochs"])


# ---------------------------------------------------------------- the run folder

def prepare_run_folder(out_dir: Path, resume: bool, force: bool, resume_epochs: int | None, log,
                       score_test: bool = True) -> None:
    """Refuse to overwrite a finished run (without --force) or silently restart an unfinished one; --resume
    --epochs N on a finished run reopens it for more epochs. A run trained with --no-test is not finished until
    a --resume scores its test split."""
    finished = (out_dir / "test_metrics.json").exists()
    started = (out_dir / "last.pt").exists()
    if resume:
        if not started:
            raise FileNotFoundError(f"--resume: no last.pt in {out_dir}; start the run without --resume")
        if finished:
            _reopen_finished_run(out_dir, resume_epochs, log)
        elif not score_test and _trained_through(out_dir, resume_epochs):
            raise ValueError(f"--resume --no-test: the run in {out_dir} has trained all its epochs, so there is "
                             "nothing to do; drop --no-test to score its test split, or add --epochs N to train on")
        return
    if (finished or started) and not force:
        if finished:
            state = "a finished run"
        elif _trained_through(out_dir):
            state = "a trained run whose test split is not scored yet (score it with --resume)"
        else:
            state = "an unfinished run (continue it with --resume)"
        raise FileExistsError(f"{out_dir} already holds {state}; pass --force to overwrite it or choose another --out")
    if force:
        for name in RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def _trained_through(out_dir: Path, epochs: int | None = None) -> bool:
    """Whether last.pt ends its recipe: the last phase ran all its epochs (``epochs``: as --resume --epochs
    would set them) or stopped early."""
    last = load_checkpoint(out_dir / "last.pt")
    phases = last["recipe"]["phases"]
    if last["phase_index"] < len(phases) - 1:
        return False
    return last["phase_epoch"] >= (epochs or phases[-1]["epochs"]) or _early_stopper(last).should_stop


def _still_blind(out_dir: Path, epochs: int | None) -> bool:
    """Whether a resumed run was started with --no-test, is not scored yet and has epochs left: resuming an
    interrupted blind run must not score its test split behind the user's back (only a resume of the trained run
    scores it)."""
    config_path = out_dir / "config.json"
    if not config_path.is_file() or not (out_dir / "last.pt").is_file() or (out_dir / "test_metrics.json").exists():
        return False
    return bool(json.loads(config_path.read_text()).get("no_test")) and not _trained_through(out_dir, epochs)


def _early_stopper(last: dict) -> EarlyStopping:
    """The early-stopping state of the phase a last.pt was saved in."""
    phase = last["recipe"]["phases"][last["phase_index"]]
    stopper = EarlyStopping((phase.get("early_stopping") or {}).get("patience"))
    stopper.load_state_dict(last["early_stopping"])
    return stopper


def _reopen_finished_run(out_dir: Path, epochs: int | None, log) -> None:
    """A finished run trains on when its last phase is given more epochs than it ran and it was not stopped early
    (then last.pt holds the weights to go on from). Its test figures are remade when it ends, so the old ones go."""
    if epochs is None:
        raise FileExistsError(f"--resume: the run in {out_dir} has already finished (test_metrics.json exists); to "
                              "train it for more epochs, add --epochs N with N above the epochs of its last phase")
    last = load_checkpoint(out_dir / "last.pt")
    phase = last["recipe"]["phases"][last["phase_index"]]
    stopper = _early_stopper(last)
    if stopper.should_stop:
        raise ValueError(f"--resume --epochs {epochs}: the run in {out_dir} was stopped early (no lower validation "
                         f"loss for {stopper.patience} epochs), so more epochs would stop at once; start a new run")
    if epochs <= last["phase_epoch"]:
        raise ValueError(f"--resume --epochs {epochs}: the finished run in {out_dir} already ran {last['phase_epoch']} "
                         f"epochs of its last phase ({phase['name']}); give more to train it on")
    (out_dir / "test_metrics.json").unlink()
    log(f"reopening the finished run in {out_dir} after epoch {last['global_epoch']}: its test_metrics.json is "
        "remade when the longer run ends")


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).resolve().parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def _read_metrics(path: Path, up_to_epoch: int) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as handle:
        return [row for row in csv.DictReader(handle) if int(row["epoch"]) <= up_to_epoch]


def _write_metrics(path: Path, rows: list[dict]) -> None:
    lines = [",".join(METRICS_COLUMNS)] + [",".join(str(row[c]) for c in METRICS_COLUMNS) for row in rows]
    atomic_write_text(path, "\n".join(lines) + "\n")


# ---------------------------------------------------------------- the loop

def train(recipe: dict | None, options: RunOptions) -> dict:
    """Run a recipe, or resume the one stored in the run (``recipe`` None); returns the test metrics ({} when
    options.score_test is False).
    Rank 0 writes everything under options.out_dir."""
    procs, device = start_processes(options.device)
    out_dir = Path(options.out_dir)
    log = (lambda *a: print(*a, flush=True)) if procs.is_main else (lambda *a: None)
    if options.resume and options.score_test and _still_blind(out_dir, options.resume_epochs):
        options.score_test = False
        log("this run was started with --no-test and has epochs left: it finishes them without scoring the test "
            "split, so a verdict on validation can come first")
    if procs.is_main:
        prepare_run_folder(out_dir, options.resume, options.force, options.resume_epochs, log, options.score_test)
    procs.barrier()

    recipe, resumed, changes = _recipe_to_run(recipe, options, out_dir, log)
    data, split = _data_and_split(recipe, options, out_dir, procs)

    torch.manual_seed(options.seed)  # identical initial weights on every rank
    model = create_model(recipe["model"], img_size=recipe["img_size"], **recipe.get("model_options", {}))
    if resumed is None and recipe.get("init"):
        _start_from_run(model, recipe["init"], split, options)
    else:
        _load_pretrained(model, recipe, options, resumed is not None)
        if resumed is None:
            model.start_age_at(float(apply_split(data, split, "train").ages.mean()))
    size = model.input_spec.size
    # teachers before the images: a refused teacher (changed file, leaking split) stops the run at once
    teachers = load_teachers(recipe["distill"], recipe["loss"], split, device) if recipe.get("distill") else None
    if teachers is not None:
        log(f"distilling from {len(teachers.models)} teacher(s), weight {teachers.weight}")

    train_set, val_set = _decoded_splits(data, split, size, procs)
    batch_size = int(recipe["batch_size"])
    if len(train_set) < batch_size * procs.world:
        raise ValueError(f"the training split has {len(train_set)} images, fewer than one batch of {batch_size} "
                         f"per process; lower --batch-size or use more data")
    if procs.is_main:
        over = data.ages_over(MAX_BIN_AGE)
        log(f"data: {len(data)} labelled images in {data.root} ({len(data.skipped)} mis-named skipped, "
            f"{over} aged over {MAX_BIN_AGE}: clipped to {MAX_BIN_AGE} for the 101-bin target); "
            f"train {len(train_set)}, val {len(val_set)}, test {split['counts']['test']}")
        _write_config(out_dir, recipe, options, model, data, device, procs, changes)

    use_cuda = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_cuda and torch.cuda.is_bf16_supported() else None
    model.to(device).to(memory_format=torch.channels_last)  # faster convolutions on GPU and on CPU (oneDNN)
    augment = build_augmentation(recipe["augmentation"])
    if augment is not None:
        augment.to(device)
    ema = make_ema(model, recipe.get("ema_decay"))
    eval_model = ema.module if ema is not None else model
    label_sigma = float(recipe.get("label_sigma", 2.0))

    dataset = CachedBatches(train_set)
    sampler = DistributedSampler(dataset, num_replicas=procs.world, rank=procs.rank, shuffle=True,
                                 seed=options.seed, drop_last=True)
    loader = DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=True), batch_size=None,
                        num_workers=options.workers, pin_memory=use_cuda, persistent_workers=options.workers > 0)

    rows = _read_metrics(out_dir / "metrics.csv", resumed["global_epoch"] if resumed else 0) if procs.is_main else []
    start_phase = resumed["phase_index"] if resumed else 0
    global_epoch = resumed["global_epoch"] if resumed else 0
    best_val = resumed["best_val_loss"] if resumed else math.inf
    if resumed is not None:
        model.load_state_dict(resumed["state_dict"])
        if ema is not None and resumed.get("ema") is not None:
            ema.load_state_dict(resumed["ema"])
        torch.set_rng_state(resumed["rng"]["torch"])
        if use_cuda and resumed["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(resumed["rng"]["cuda"])
        log(f"resuming {out_dir} after epoch {global_epoch} (phase {recipe['phases'][start_phase]['name']})")
    else:
        torch.manual_seed(options.seed + 1000 * procs.rank)  # ranks augment differently

    for phase_index in range(start_phase, len(recipe["phases"])):
        phase = recipe["phases"][phase_index]
        model.set_trainable(phase["trainable"])
        step_model = model
        if procs.world > 1:
            step_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if use_cuda else None)
        if options.compile:
            step_model = torch.compile(step_model)
        optimizer = make_optimizer(model, phase)
        scheduler = make_scheduler(optimizer, phase.get("scheduler"), phase["epochs"], len(loader))
        batch_scheduler = scheduler if getattr(scheduler, "per_batch", False) else None
        stopper = EarlyStopping((phase.get("early_stopping") or {}).get("patience"))
        phase_epoch = 0
        if resumed is not None and phase_index == start_phase:
            optimizer.load_state_dict(resumed["optimizer"])
            if scheduler is not None:
                scheduler.load_state_dict(resumed["scheduler"])
            stopper.load_state_dict(resumed["early_stopping"])
            phase_epoch = resumed["phase_epoch"]
        if phase_epoch < phase["epochs"] and not stopper.should_stop:  # not for a phase resumed at its end
            log(f"phase {phase['name']}: {phase['epochs']} epochs, lr {phase['lr']}, trainable {phase['trainable']}, "
                f"{sum(p.numel() for p in model.parameters() if p.requires_grad):,} trainable parameters")

        while phase_epoch < phase["epochs"] and not stopper.should_stop:
            phase_epoch += 1
            global_epoch += 1
            epoch_started = time.perf_counter()
            sampler.set_epoch(global_epoch)
            stats = _train_one_epoch(step_model, model, loader, augment, optimizer, recipe["loss"], device, amp_dtype,
                                     use_cuda, f"epoch {global_epoch}", procs.is_main, label_sigma=label_sigma,
                                     batch_scheduler=batch_scheduler, ema=ema, teachers=teachers,
                                     mixup=recipe.get("mixup"))
            val_out = predict(eval_model, val_set.pixels, options.eval_batch_size, device)
            val_loss = _validation_loss(model, val_out, val_set, recipe["loss"], label_sigma)
            val = summarize(val_out["age"], val_set.data.ages, val_out["gender_prob"], val_set.data.genders)
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None and batch_scheduler is None:
                scheduler.step(val_loss) if phase["scheduler"]["type"] == "plateau" else scheduler.step()
            stopper.update(val_loss)
            row = _epoch_row(global_epoch, phase["name"], lr, stats, val_loss, val, procs.world)
            epochs_left = phase["epochs"] - phase_epoch + sum(p["epochs"] for p in recipe["phases"][phase_index + 1:])
            log(_epoch_line(row, stats, val_out, val_set.data.ages)
                + _time_left(epochs_left, time.perf_counter() - epoch_started))
            if procs.is_main:
                rows.append(row)
                _write_metrics(out_dir / "metrics.csv", rows)
                if val_loss < best_val:
                    best_val = val_loss
                    save_checkpoint(out_dir / "best.pt", eval_model, epoch=global_epoch, val_loss=val_loss,
                                    val_metrics=val, recipe=recipe)
                save_checkpoint(out_dir / "last.pt", model, recipe=recipe, phase_index=phase_index,
                                ema=ema.state_dict() if ema is not None else None,
                                phase_epoch=phase_epoch, global_epoch=global_epoch, best_val_loss=best_val,
                                optimizer=optimizer.state_dict(),
                                scheduler=scheduler.state_dict() if scheduler is not None else None,
                                early_stopping=stopper.state_dict(),
                                rng={"torch": torch.get_rng_state(),
                                     "cuda": torch.cuda.get_rng_state() if use_cuda else None})
                plot_learning_curves(out_dir / "metrics.csv", out_dir / "learning_curves.png")
        if stopper.should_stop:
            log(f"early stopping: no lower validation loss for {stopper.patience} epochs")
        if (phase.get("early_stopping") or {}).get("restore_best"):
            procs.barrier()
            eval_model.load_state_dict(load_checkpoint(out_dir / "best.pt")["state_dict"])
            if ema is not None:
                model.load_state_dict(eval_model.state_dict())
            log("restored the best weights so far (best.pt)")
        # The next phase starts fresh; a resume inside it must not reuse this phase's optimiser state.
        resumed = None

    _check_ranks_agree(model, procs, device, log)
    if options.score_test:
        result = _evaluate_test(out_dir, data, split, options, device, procs, log)
    else:
        result = {}
        log(f"trained; the test split is not scored (--no-test). Choose on the validation figures, then score it "
            f"once: edge-age train --resume --out {out_dir}")
    if procs.world > 1:
        dist.destroy_process_group()
    return result


def _recipe_to_run(recipe: dict | None, options: RunOptions, out_dir: Path, log) -> tuple[dict, dict | None, dict]:
    """The recipe this run follows: the given one, or on --resume the stored one (with --epochs applied), plus the
    resumed checkpoint and what --resume changed. Sets options.seed (a resumed run keeps its own)."""
    resumed = load_checkpoint(out_dir / "last.pt") if options.resume else None
    changes = {}
    if resumed is not None:
        recipe = resumed["recipe"]
        config_path = out_dir / "config.json"
        options.seed = json.loads(config_path.read_text()).get("seed", 0) if config_path.is_file() else 0
        if options.resume_epochs is not None:
            changes = _change_epochs(recipe, resumed, options.resume_epochs)
            log(f"--resume --epochs {options.resume_epochs}: each phase now lasts {options.resume_epochs} epochs "
                f"(was {changes['epochs_before']}); recorded in config.json")
    elif options.seed is None:
        options.seed = 0
    log("recipe " + json.dumps(recipe, indent=2))
    return recipe, resumed, changes


def _data_and_split(recipe: dict, options: RunOptions, out_dir: Path, procs: Processes):
    """The labelled images and the run's split (made and saved by rank 0 for a new run, read on --resume)."""
    data = load_labelled(resolve_data_dir(options.data), options.labels_csv)
    if options.resume:
        return data, load_split(out_dir / "split.json")
    if options.split_file:
        split = load_split(options.split_file)
        for name in ("train", "val", "test"):
            apply_split(data, split, name)  # every file of the given split must be in --data
    else:
        split = make_split(data, seed=options.seed, subset=recipe.get("subset"))
    if procs.is_main:
        save_split(split, out_dir / "split.json")
    return data, split


def _decoded_splits(data, split: dict, size: int, procs: Processes):
    """Train and validation images decoded once at ``size``: rank 0 builds the cache, the others read it."""
    if procs.is_main:
        train_set = decoded_cache(apply_split(data, split, "train"), size)
        val_set = decoded_cache(apply_split(data, split, "val"), size)
    procs.barrier()
    if not procs.is_main:
        train_set = decoded_cache(apply_split(data, split, "train"), size, verbose=False)
        val_set = decoded_cache(apply_split(data, split, "val"), size, verbose=False)
    return train_set, val_set


def _write_config(out_dir: Path, recipe: dict, options: RunOptions, model: AgeGenderModel, data, device,
                  procs: Processes, changes: dict) -> None:
    """config.json: what the run used, on what machine; a resume keeps the original and records its changes."""
    config = {"recipe": recipe, "seed": options.seed, "model": model.config(),
              "split_sha256": sha256_file(out_dir / "split.json"),
              "data_root": relative_to_folder(data.root, out_dir),  # relative: a run folder travels
              "device": str(device), "world_size": procs.world,
              "git_commit": _git_commit(), "versions": runtime_versions(), "machine": describe_machine(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S"), "resumed": options.resume,
              "no_test": not options.score_test}
    if options.resume and (out_dir / "config.json").exists():
        config = {**json.loads((out_dir / "config.json").read_text()), "resumed": True}
        if changes:
            config["recipe"] = recipe
            config["changed_on_resume"] = [*config.get("changed_on_resume", []), changes]
    atomic_write_json(out_dir / "config.json", config)


def _epoch_row(epoch: int, phase: str, lr: float, stats: dict, val_loss: float, val: dict, world: int) -> dict:
    """One metrics.csv row."""
    return {"epoch": epoch, "phase": phase, "lr": f"{lr:.3g}",
            "train_loss": f"{stats['loss']:.5f}", "train_age_mae": f"{stats['age_mae']:.4f}",
            "train_gender_acc": f"{stats['gender_acc']:.4f}", "val_loss": f"{val_loss:.5f}",
            "val_age_mae": f"{val['age_mae']:.4f}", "val_gender_acc": f"{val['gender_accuracy']:.4f}",
            "images_per_s": f"{stats['images_per_s'] * world:.1f}",
            "data_wait_share": f"{stats['data_wait_share']:.4f}", "augment_share": f"{stats['augment_share']:.4f}",
            "epoch_seconds": f"{stats['seconds']:.1f}"}


def _epoch_line(row: dict, stats: dict, val_out: dict, val_ages) -> str:
    """The line printed per epoch (101-bin models also show each of their age readings)."""
    readings = [(key.split("_")[1], np.abs(val_out[key] - val_ages).mean()) for key in AGE_READINGS if key in val_out]
    extra = f" ({', '.join(f'{name} {mae:.2f}' for name, mae in readings)})" if readings else ""
    return (f"epoch {row['epoch']} [{row['phase']}] loss {row['train_loss']} val_loss {row['val_loss']} "
            f"val MAE {row['val_age_mae']}{extra} val gender acc {row['val_gender_acc']} lr {row['lr']} | "
            f"{row['images_per_s']} img/s, data wait {stats['data_wait_share']:.1%}, "
            f"augment {stats['augment_share']:.1%}, {row['epoch_seconds']} s")


def _time_left(epochs_left: int, epoch_seconds: float) -> str:
    """The end of the epoch line: how long the rest of the run takes if each epoch takes as long as this one
    (early stopping can only shorten it)."""
    if epochs_left <= 0:
        return ""
    return f"; {epochs_left} epoch(s) left, about {epochs_left * epoch_seconds / 60:.0f} min at this pace"


def _change_epochs(recipe: dict, resumed: dict, epochs: int) -> dict:
    """Apply --resume --epochs N to the stored recipe (and the checkpoint's copy of it); refuse to cut a phase
    below the epochs it has already run."""
    phase = recipe["phases"][resumed["phase_index"]]
    if epochs < resumed["phase_epoch"]:
        raise ValueError(f"--epochs {epochs}: phase {phase['name']} has already run {resumed['phase_epoch']} epochs; "
                         f"give at least {resumed['phase_epoch']}")
    before = [p["epochs"] for p in recipe["phases"]]
    for each in recipe["phases"]:
        each["epochs"] = epochs
    return {"epochs_before": before, "epochs": epochs, "after_epoch": resumed["global_epoch"],
            "when": time.strftime("%Y-%m-%d %H:%M:%S")}


def _check_ranks_agree(model: AgeGenderModel, procs: Processes, device, log) -> None:
    """Under DDP every rank must end with the same weights; compare checksums and fail loudly if not."""
    if procs.world == 1:
        return
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    checksum = torch.stack([flat.sum(), flat.pow(2).sum()]).to(device)
    gathered = [torch.empty_like(checksum) for _ in range(procs.world)]
    dist.all_gather(gathered, checksum)
    if any(not torch.equal(g, gathered[0]) for g in gathered):
        raise RuntimeError(f"ranks ended with different weights: checksums {[g.tolist() for g in gathered]}")
    log(f"all {procs.world} processes hold identical weights (checksum {gathered[0][0].item():.6f})")


def _validation_loss(model: AgeGenderModel, val_out: dict, val_set, loss_weights: dict, label_sigma: float) -> float:
    outputs = {k: torch.from_numpy(v) for k, v in val_out.items()}
    ages = torch.from_numpy(val_set.data.ages.astype(np.float32))
    genders = torch.from_numpy(val_set.data.genders.astype(np.float32))
    with torch.no_grad():
        return float(compute_loss(outputs, ages, genders, loss_weights, model, label_sigma).item())


def _train_one_epoch(step_model, model, loader, augment, optimizer, loss_weights, device, amp_dtype, use_cuda,
                     desc, show_bar, max_steps: int | None = None, warmup_steps: int = 0, label_sigma: float = 2.0,
                     batch_scheduler=None, ema=None, teachers=None, mixup: float | None = None) -> dict:
    """One pass over ``loader`` (or its first ``max_steps`` batches). Timing counts only the steps after
    ``warmup_steps``; on a GPU, running sums stay on the device so that a step never waits for the host.
    ``batch_scheduler`` steps after every batch, ``ema`` averages the weights after every batch; ``teachers``
    (train.distill) answer each augmented batch for the loss's soft targets; ``mixup`` (alpha) blends the
    augmented faces in pairs (mix_batch)."""
    from tqdm import tqdm

    model.train()
    spec = model.input_spec
    steps = len(loader) if max_steps is None else min(max_steps, len(loader))
    check_every = 25 if use_cuda else 1  # a finiteness check synchronises the GPU; on CPU it is free
    loss_sum = torch.zeros((), device=device, dtype=torch.float64)
    abs_err_sum = torch.zeros((), device=device, dtype=torch.float64)
    correct_sum = torch.zeros((), device=device, dtype=torch.float64)
    counted = 0
    data_wait = augment_time = 0.0
    started = time.perf_counter()
    batches = iter(loader)
    bar = tqdm(total=steps, desc=desc, leave=False, disable=None if show_bar else True, file=sys.stderr)
    for step in range(steps):
        if step == warmup_steps and warmup_steps:
            if use_cuda:
                torch.cuda.synchronize()
            started, data_wait, augment_time, counted = time.perf_counter(), 0.0, 0.0, 0
            for running_sum in (loss_sum, abs_err_sum, correct_sum):
                running_sum.zero_()
        t0 = time.perf_counter()
        images, ages, genders = next(batches)
        images = images.to(device, non_blocking=True)
        ages, genders = ages.to(device, non_blocking=True), genders.to(device, non_blocking=True)
        t1 = time.perf_counter()
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        if augment is not None:
            x = augment(x)
        if mixup:
            x, partner_ages, partner_genders, own_weight = mix_batch(x, ages, genders, mixup)
        x01, x = x, spec.normalize_float(x).contiguous(memory_format=torch.channels_last)
        t2 = time.perf_counter()
        soft_targets = teachers.soft_targets(x01, amp_dtype) if teachers is not None else None  # counts as compute
        data_wait += t1 - t0
        augment_time += t2 - t1
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = step_model(x)
            loss = compute_loss(out, ages, genders, loss_weights, model, label_sigma, soft_targets)
            if mixup:
                loss = own_weight * loss + (1 - own_weight) * compute_loss(
                    out, partner_ages, partner_genders, loss_weights, model, label_sigma, soft_targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if batch_scheduler is not None:
            batch_scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        with torch.no_grad():
            n = len(ages)
            loss_sum += loss.detach() * n
            abs_err_sum += (out["age"].float() - ages).abs().sum()
            correct_sum += ((out["gender_logit"] > 0).float() == genders).sum()
            counted += n
        if (step + 1) % check_every == 0 or step + 1 == steps:
            if not torch.isfinite(loss_sum):
                bar.close()
                raise TrainingDiverged(f"{desc}: the loss became {loss_sum.item()} by step {step + 1}; stopped. The "
                                       "last good checkpoint (last.pt, best.pt) is kept; lower the learning rate and "
                                       "--resume or --force")
        bar.update(1)
    bar.close()
    if use_cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    n = max(counted, 1)
    return {"loss": loss_sum.item() / n, "age_mae": abs_err_sum.item() / n, "gender_acc": correct_sum.item() / n,
            "images_per_s": counted / seconds, "data_wait_share": data_wait / seconds,
            "augment_share": augment_time / seconds, "seconds": seconds, "steps": steps}


def _load_pretrained(model: AgeGenderModel, recipe: dict, options: RunOptions, resuming: bool) -> None:
    """The model's declared pretrained weights when the recipe starts from them (backbone 'imagenet') or the
    user passes --backbone-weights FILE / --pretrained; the model knows its file and where it comes from."""
    wants = options.backbone_weights or options.pretrained
    if wants and model.pretrained_weights is None:
        raise ValueError(f"--backbone-weights/--pretrained: {recipe['model']} declares no pretrained weights")
    if resuming or not (wants or recipe.get("backbone") == "imagenet"):
        return  # a resumed checkpoint holds all weights
    source = model.load_pretrained(options.backbone_weights, allow_download=options.pretrained)
    print(f"loaded {recipe['model']}'s pretrained weights ({model.pretrained_weights.file}) from {source}", flush=True)


def _start_from_run(model: AgeGenderModel, init: dict, split: dict, options: RunOptions) -> None:
    """--init: the weights of a finished run (sha256 and no-leak checked) instead of the recipe's initial ones.
    Another --img-size is allowed where the weights do not depend on it (convolutions and a global pool, as in
    EfficientNet-Lite and MA-SFV2): fine-tuning a run at a larger input costs a few epochs, not a new run."""
    if options.backbone_weights or options.pretrained:
        raise ValueError("--init and --backbone-weights/--pretrained together: the run starts from --init's "
                         "weights, all of them; drop one")
    source = load_source_model(init, split, "starting point")
    wanted, found = model.config(), source.config()
    source_size, size = found["input_spec"]["size"], wanted["input_spec"]["size"]
    if found["name"] != wanted["name"]:
        raise ValueError(f"--init {init['checkpoint']} holds {found['name']}; this run builds {wanted['name']}: "
                         "give the same --model, or start from another run")
    if {**found["input_spec"], "size": size} != wanted["input_spec"]:
        raise ValueError(f"--init {init['checkpoint']} expects input {found['input_spec']}; this run feeds "
                         f"{wanted['input_spec']}: give the same --model options, or start from another run")
    try:
        model.load_state_dict(source.state_dict())
    except RuntimeError as err:
        if source_size != size:
            raise ValueError(f"--init {init['checkpoint']}: {wanted['name']}'s weights depend on its input size "
                             f"and were trained at {source_size} px, not {size}: give --img-size {source_size}, "
                             "or start from another run") from None
        raise ValueError(f"--init {init['checkpoint']}: its weights do not fit {wanted['name']} with options "
                         f"{wanted['options']} ({str(err).splitlines()[0]}); give the options it was trained with "
                         f"({found['options']})") from None
    resized = f", trained at {source_size} px, fine-tuned here at {size} px" if source_size != size else ""
    print(f"starting from {init['checkpoint']} (sha256 {init['sha256'][:16]}...){resized}", flush=True)


def _evaluate_test(out_dir: Path, data, split, options: RunOptions, device, procs: Processes, log) -> dict:
    """Evaluate the best weights once on the test split into test_metrics.json."""
    if not procs.is_main:
        return {}
    model, best = load_model(out_dir / "best.pt")
    model.to(device)
    test_set = decoded_cache(apply_split(data, split, "test"), model.input_spec.size)
    out = predict(model, test_set.pixels, options.eval_batch_size, device)
    result = summarize(out["age"], test_set.data.ages, out["gender_prob"], test_set.data.genders, intervals=True)
    result["best_epoch"] = best["epoch"]
    result["age_output"] = getattr(model, "age_output", "age")
    for key in AGE_READINGS:
        if key in out:
            result[f"age_mae_{key.split('_')[1]}"] = float(np.abs(out[key] - test_set.data.ages).mean())
    atomic_write_json(out_dir / "test_metrics.json", result)
    log(f"test ({result['n']} images, best epoch {result['best_epoch']}): age MAE {with_interval(result, 'age_mae')}, "
        f"CS(5) {with_interval(result, 'cs5', '.3f')}, "
        f"gender accuracy {with_interval(result, 'gender_accuracy', '.3f')} (95% intervals) "
        f"-> {out_dir / 'test_metrics.json'}")
    return result


# ---------------------------------------------------------------- throughput

def measure_training_speed(recipe: dict, data: LabelledImages, device_flag: str = "auto", steps: int = 30,
                           warmup: int = 5, workers: int = 0, compile: bool = False, seed: int = 0) -> dict:
    """Time ``steps`` real training steps of a recipe's first phase (after ``warmup``) on cached real images.

    The same loop as training (the decoded cache, augmentation on the device, AMP on CUDA), so images/s and
    the data-wait share are what a run of that recipe would see here. No run folder is written.
    """
    _, device = start_processes(device_flag)
    use_cuda = device.type == "cuda"
    amp_dtype = torch.bfloat16 if use_cuda and torch.cuda.is_bf16_supported() else None
    batch_size = int(recipe["batch_size"])
    needed = batch_size * (steps + warmup)
    if len(data) < batch_size:
        raise ValueError(f"{data.root} has {len(data)} labelled images, fewer than one batch of {batch_size}")
    rng = np.random.default_rng(seed)
    chosen = data.select(np.sort(rng.choice(len(data), size=min(needed, len(data)), replace=False)))
    torch.manual_seed(seed)
    model = create_model(recipe["model"], img_size=recipe["img_size"], **recipe.get("model_options", {}))
    phase = recipe["phases"][0]
    model.set_trainable(phase["trainable"])
    model.to(device).to(memory_format=torch.channels_last)
    augment = build_augmentation(recipe["augmentation"])
    if augment is not None:
        augment.to(device)
    cached = decoded_cache(chosen, model.input_spec.size, verbose=False)
    dataset = CachedBatches(cached)
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=needed)
    loader = DataLoader(dataset, sampler=BatchSampler(sampler, batch_size, drop_last=True), batch_size=None,
                        num_workers=workers, pin_memory=use_cuda, persistent_workers=False)
    step_model = torch.compile(model) if compile else model
    stats = _train_one_epoch(step_model, model, loader, augment, make_optimizer(model, phase), recipe["loss"], device,
                             amp_dtype, use_cuda, f"{recipe['model']} {recipe['name']}", True,
                             max_steps=steps + warmup, warmup_steps=warmup)
    return {"device": torch.cuda.get_device_name(device) if use_cuda else "cpu", "amp": str(amp_dtype),
            "images_per_s": stats["images_per_s"], "step_ms": 1000 * batch_size / stats["images_per_s"],
            "data_wait_share": stats["data_wait_share"], "augment_share": stats["augment_share"],
            "timed_steps": steps, "warmup_steps": warmup, "phase": phase["name"]}
