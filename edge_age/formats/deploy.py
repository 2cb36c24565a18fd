"""What every exported file computes.

``DeployModel``: a normalised image in, (age in years, P(female)) out (``formats.OUTPUT_NAMES``), each of shape
(N,). The model's own ``forward_features`` (the trunk, quantised where a format quantises) feeds its
``forward_head`` (kept float).
"""
from __future__ import annotations

import torch
from torch import nn

from edge_age.registry import AgeGenderModel


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
