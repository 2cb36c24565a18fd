"""Running a PyTorch model over decoded images: the one place predictions are made from a model.

Training validation, the test evaluation, export parity and the benchmark's PyTorch row all call
``predict`` so that every stage preprocesses and decodes outputs the same way.
"""
from __future__ import annotations

import numpy as np
import torch

from edge_age.registry import AgeGenderModel


@torch.no_grad()
def predict(model: AgeGenderModel, pixels_uint8_nhwc: np.ndarray, batch_size: int = 64,
            device: torch.device | str = "cpu") -> dict[str, np.ndarray]:
    """uint8 N x S x S x 3 pixels -> every model output (see OUTPUT_MEANINGS) plus "gender_prob", as float arrays."""
    was_training = model.training
    model.eval()
    spec = model.input_spec
    results: dict[str, list[np.ndarray]] = {}
    for start in range(0, len(pixels_uint8_nhwc), batch_size):
        batch = torch.from_numpy(np.array(pixels_uint8_nhwc[start:start + batch_size])).to(device)
        out = model(spec.normalize(batch))
        for key, value in {**out, "gender_prob": torch.sigmoid(out["gender_logit"])}.items():
            results.setdefault(key, []).append(value.float().cpu().numpy())
    model.train(was_training)
    return {key: np.concatenate(parts) for key, parts in results.items()}
