"""The 101-bin age output that MA-SFV2 and EfficientNet-Lite share: a softmax over ages 0..100, read as one age.

Two readings of the predicted distribution:
- "expectation": its mean, sum of p_k * k (DEX; the MA-SFV2 paper's).
- "median": the age with half the probability below it, bin k taken as the interval [k - 0.5, k + 0.5). Age error
  is scored as an absolute difference (MAE, CS@n), and the point that minimises the expected absolute error under a
  distribution is its median, not its mean. On the validation split it was 0.04-0.07 years better than the
  expectation for each of the 101-bin runs of 2026-12-04 (results/runs-cpu-2026-12-04/age_readings.py, .json).

The median is written with a matrix product and elementwise operations only (no cumsum, no gather), so every
exporter and runtime takes it as it is, and XNNPACK runs it inside the same delegate partition as the trunk. ``AgeBinsReadout`` is a module so that the exporters can keep it in float
with the other heads (it is listed in the models' ``head_modules``).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

NUM_AGE_BINS = 101  # ages 0..100
AGE_READOUTS = ("expectation", "median")


class AgeBinsReadout(nn.Module):
    """101 age logits -> {"age_expectation", "age_median"} in years."""

    def __init__(self):
        super().__init__()
        self.register_buffer("bin_ages", torch.arange(NUM_AGE_BINS, dtype=torch.float32), persistent=False)
        # probs @ below[:, k] = the probability of the bins under bin k
        self.register_buffer("below", torch.ones(NUM_AGE_BINS, NUM_AGE_BINS).triu(diagonal=1), persistent=False)

    def forward(self, age_logits: torch.Tensor) -> dict[str, torch.Tensor]:
        probs = torch.softmax(age_logits, dim=1)
        # Each bin contributes the share of its width that lies under the median: 1 for the bins wholly under it,
        # the fraction (0.5 - probability below) / p for the bin it falls in, 0 above.
        share = (0.5 - probs @ self.below) / probs.clamp_min(1e-6)
        # clamp(0, 1) written as 1 - relu(1 - relu(x)): exact at both ends, and the TFLite converter does not fuse
        # it into RELU_0_TO_1, an op XNNPACK does not run (it split the file into two delegate partitions)
        share_under_median = 1.0 - torch.relu(1.0 - torch.relu(share))
        return {"age_expectation": (probs * self.bin_ages).sum(dim=1),
                "age_median": share_under_median.sum(dim=1) - 0.5}


def median_shift(probs: np.ndarray, ages: np.ndarray) -> np.ndarray:
    """How far each age lies from the median of its distribution, as probability mass: |F(age) - 0.5|, F the
    distribution's cumulative with bin k spread evenly over [k - 0.5, k + 0.5) (the reading above, inverted).

    A median is ill-conditioned where the model spreads its belief thinly: at 0.2% a year, a change of 0.005 in the
    cumulative moves it 2.5 years. In mass, the same change is 0.005 wherever it falls, which is what the export
    parity check needs to tell rounding from a wrong file (probs: N x 101, ages: N)."""
    lower_edges = np.arange(probs.shape[1]) - 0.5
    share_under_age = np.clip(np.asarray(ages, dtype=np.float64)[:, None] - lower_edges, 0.0, 1.0)
    return np.abs((probs * share_under_age).sum(axis=1) - 0.5)
