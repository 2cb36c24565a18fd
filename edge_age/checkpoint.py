"""Checkpoints: one format for training runs, export and prediction.

A checkpoint is a dict of tensors and plain data (loaded with ``weights_only=True``): the model's
config (name, options, input spec: enough to rebuild it through the registry), its weights, and for
``last.pt`` the optimiser, scheduler and early-stopping state needed to resume.
"""
from __future__ import annotations

from pathlib import Path

import torch

from edge_age.io import atomic_torch_save
from edge_age.registry import AgeGenderModel, model_from_config

FORMAT = "edge-age-checkpoint/1"


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
