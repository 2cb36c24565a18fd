"""Size of a model: parameters and FLOPs at its input size (torch.utils.flop_counter)."""
from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode

from edge_age.registry import AgeGenderModel


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def count_flops(model: AgeGenderModel) -> int:
    """FLOPs of one forward pass at batch 1 and the model's input size; a multiply-add counts as 2
    (so this is twice the "MACs" some papers quote). Convolutions and matrix products only."""
    size = model.input_spec.size
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with counter:
        model(torch.zeros(1, 3, size, size))
    model.train(was_training)
    return int(counter.get_total_flops())
