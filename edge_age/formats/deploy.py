"""What every exported file computes, and the helpers all format modules share.

``DeployModel``: a normalised image in, (age in years, P(female)) out, each of shape (N,). The model's own
``forward_features`` (the trunk, quantised where a format quantises) feeds its ``forward_head`` (kept float).
"""
from __future__ import annotations

import importlib
import os
import shutil
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from edge_age.registry import AgeGenderModel

# What every exported file returns, in this order.
OUTPUT_NAMES = ["age", "gender"]


class Trunk(nn.Module):
    """The model's feature trunk, optionally taking NHWC input (TFLite's layout)."""

    def __init__(self, model: AgeGenderModel, channels_last_input: bool = False):
        super().__init__()
        self.model = model
        self.channels_last_input = channels_last_input

    def forward(self, x):
        if self.channels_last_input:
            x = x.permute(0, 3, 1, 2)
        return self.model.forward_features(x)


class DeployModel(nn.Module):
    """What ships: normalised image -> (age in years, P(female)), each of shape (N,).

    ``trunk`` replaces the float trunk (the full-int8 TFLite file passes a PT2E-quantised one).
    """

    def __init__(self, model: AgeGenderModel, channels_last_input: bool = False, trunk: nn.Module | None = None):
        super().__init__()
        self.model = model
        self.trunk = trunk if trunk is not None else Trunk(model, channels_last_input)

    def forward(self, x):
        out = self.model.forward_head(self.trunk(x))
        return out["age"], torch.sigmoid(out["gender_logit"])


def require(extra: str, module: str):
    """Import an optional dependency or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{module} is not installed ({err}); install it with: pip install -e \".[{extra}]\"") from None


def float_conversion(workdir: Path, name: str, convert: Callable[[Path], None]) -> Path:
    """The model's float file in one format, made once per export run and shared by that format's variants.

    Tracing and converting the model is most of an export's time, and every float or weight-quantised variant
    (fp32, fp16, int8-dynamic; ONNX int8 too) starts from the same float file. ``workdir`` lives for one export run
    of one model (the exporter's staging folder), so the file can never belong to another model. ``convert(path)``
    writes it; a conversion that fails leaves nothing behind for the next variant to pick up.
    """
    path = workdir / name
    if not path.exists():
        partial = workdir / f".partial-{name}"
        try:
            convert(partial)
            os.replace(partial, path)
        finally:
            if partial.is_dir():
                shutil.rmtree(partial)
            elif partial.exists():
                partial.unlink()
    return path
