"""Checkpoints: one format for training runs, export and prediction.

A checkpoint is a dict of tensors and plain data (loaded with ``weights_only=True``): the model's
config (name, options, input spec: enough to rebuild it through the registry), its weights, and for
``last.pt`` the optimiser, scheduler and early-stopping state needed to resume.

A published run folder keeps its checkpoint under the repository's 20 MB limit. ``shrink_checkpoint`` writes a
weights-only copy in fp16, or in int8 with one scale per output channel (VGG16: 67 MB -> 17 MB); loading turns it
back into float32, so every stage reads it as it reads any checkpoint.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from edge_age.cli_args import output_file
from edge_age.io import atomic_torch_save
from edge_age.registry import AgeGenderModel, model_from_config

FORMAT = "edge-age-checkpoint/1"
WEIGHT_STORAGES = ("fp16", "int8")
# A depthwise filter has 9 or 25 weights: with those in int8 too, the phone model's ages moved by 0.36 years on
# average and 3.0 at most on 60 real faces; with them in fp16, 0.17 and 1.1. They are a tiny share of the bytes.
INT8_MIN_FAN_IN = 32


def save_checkpoint(path: str | Path, model: AgeGenderModel, **extra) -> None:
    """Write atomically (temp file, then rename), so a kill never leaves a half-written checkpoint."""
    payload = {"format": FORMAT, "model": model.config(), "state_dict": model.state_dict(), **extra}
    atomic_torch_save(payload, path)


def load_checkpoint(path: str | Path) -> dict:
    """Read a checkpoint with weights_only=True; a missing, truncated or foreign file is a clear error."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty (0 bytes): corrupt or truncated, not a checkpoint; restore a good copy")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        detail = (str(err).strip().splitlines() or [""])[0][:200]
        raise ValueError(f"{path} is corrupt or truncated and cannot be loaded ({type(err).__name__}"
                         f"{': ' + detail if detail else ''}); restore a good copy or retrain") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not an edge-age checkpoint (no '{FORMAT}' marker); "
                         "train with `edge-age train` or pass a run folder's best.pt")
    if "weight_storage" in payload:
        payload["state_dict"] = _float_weights(path, payload)
    return payload


def load_model(path: str | Path, expected_model: str | None = None) -> tuple[AgeGenderModel, dict]:
    """Rebuild the model a checkpoint describes and load its weights (eval mode)."""
    payload = load_checkpoint(path)
    name = payload["model"]["name"]
    if expected_model is not None and name != expected_model:
        raise ValueError(f"{path} holds a {name} checkpoint, not {expected_model}")
    model = model_from_config(payload["model"])
    try:
        model.load_state_dict(payload["state_dict"])
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not fit {name} with options {payload['model'].get('options')}: "
                         f"{str(err).splitlines()[0]}") from None
    return model.eval(), payload


def shrink_checkpoint(source: str | Path, destination: str | Path, storage: str) -> tuple[int, int]:
    """Write a weights-only copy of ``source`` with its float weights in fp16, or in int8 (symmetric, one scale
    per output channel for weights with at least INT8_MIN_FAN_IN inputs per channel; the rest in fp16). Returns
    both sizes.
    A resume checkpoint (last.pt) is refused: its optimiser state has no use in a smaller copy."""
    source, destination = Path(source), Path(destination)
    if storage not in WEIGHT_STORAGES:
        raise ValueError(f"unknown weight storage {storage!r}; choose one of: {', '.join(WEIGHT_STORAGES)}")
    if destination.exists():
        raise FileExistsError(f"{destination} exists; choose another name (nothing was overwritten)")
    payload = load_checkpoint(source)
    if "optimizer" in payload:
        raise ValueError(f"{source} is a resume checkpoint (last.pt); shrink the run's best.pt")
    if "weight_storage" in payload:
        raise ValueError(f"{source} is already stored in {payload['weight_storage']}; shrink the original")
    weights, scales = {}, {}
    for name, tensor in payload["state_dict"].items():
        if not tensor.is_floating_point():
            weights[name] = tensor
        elif storage == "int8" and tensor.dim() >= 2 and tensor[0].numel() >= INT8_MIN_FAN_IN:
            weights[name], scales[name] = _int8_per_channel(tensor.float())
        else:
            weights[name] = tensor.half()
    payload.update(state_dict=weights, weight_storage=storage, weight_scales=scales)
    atomic_torch_save(payload, destination)
    return source.stat().st_size, destination.stat().st_size


def _int8_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    largest = weight.abs().flatten(1).amax(dim=1)
    scale = torch.where(largest > 0, largest / 127, torch.ones_like(largest))
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return torch.round(weight / scale.view(shape)).clamp(-127, 127).to(torch.int8), scale


def _float_weights(path: Path, payload: dict) -> dict:
    """A shrunk checkpoint's weights in float32; scales that do not fit their weights mean a tampered file."""
    storage, scales = payload["weight_storage"], payload.get("weight_scales")
    if storage not in WEIGHT_STORAGES or not isinstance(scales, dict):
        raise ValueError(f"{path}: unknown weight storage {storage!r}; not written by edge-age shrink-checkpoint")
    weights = {}
    for name, tensor in payload["state_dict"].items():
        if name in scales:
            scale = scales[name]
            if (not isinstance(scale, torch.Tensor) or not scale.is_floating_point() or tensor.dtype != torch.int8
                    or scale.shape != tensor.shape[:1]):
                raise ValueError(f"{path}: int8 weight {name!r} and its scales do not fit: damaged or tampered; "
                                 "shrink the original again")
            tensor = tensor.float() * scale.float().view((-1,) + (1,) * (tensor.dim() - 1))
        elif tensor.dtype == torch.int8:
            raise ValueError(f"{path}: int8 weight {name!r} has no scales: damaged or tampered; shrink the original again")
        weights[name] = tensor.float() if tensor.is_floating_point() else tensor
    return weights


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("checkpoint", help="a run's best.pt")
    parser.add_argument("--out", required=True, type=output_file,
                        help="the smaller copy to write (never overwrites a file)")
    parser.add_argument("--storage", choices=WEIGHT_STORAGES, default="int8",
                        help="fp16 (half the size), or int8 with a scale per output channel (a quarter); default int8")


def run(args: argparse.Namespace) -> int:
    before, after = shrink_checkpoint(args.checkpoint, args.out, args.storage)
    print(f"wrote {args.out}: {after / 1e6:.2f} MB ({args.storage} weights) from {before / 1e6:.2f} MB. "
          f"It loads as float32 everywhere; measure what the rounding costs with `edge-age evaluate`.")
    return 0
