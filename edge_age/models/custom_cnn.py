"""Model A: the coursework report's small custom CNN.

Four 3x3 conv blocks (32, 64, 128, 256 filters, 'same' padding, ReLU, 2x2 max-pool) shrink a
128x128 input to an 8x8x256 map; flatten -> Dense 128 ReLU -> dropout -> two linear heads
(age in years, gender logit). Inputs are RGB scaled to [0, 1], no mean/std normalisation.
"""
from __future__ import annotations

from torch import nn

from edge_age.registry import AgeGenderModel, InputSpec, register_model

FILTERS = (32, 64, 128, 256)


class CustomCNN(AgeGenderModel):
    description = "coursework model A: 4 conv blocks 32-64-128-256, dense 128, age + gender heads"

    def __init__(self, img_size: int = 128, dropout: float = 0.5):
        super().__init__()
        if img_size % 16:
            raise ValueError(f"custom_cnn needs an input size divisible by 16 (four 2x2 pools), got {img_size}")
        self.input_spec = InputSpec(size=img_size)
        blocks, in_ch = [], 3
        for out_ch in FILTERS:
            blocks += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            in_ch = out_ch
        self.features = nn.Sequential(*blocks)
        side = img_size // 16
        self.dense = nn.Sequential(
            nn.Flatten(), nn.Linear(FILTERS[-1] * side * side, 128), nn.ReLU(inplace=True), nn.Dropout(dropout)
        )
        self.age_head = nn.Linear(128, 1)
        self.gender_head = nn.Linear(128, 1)

    def forward_features(self, x):
        return self.dense(self.features(x))

    def forward_head(self, h):
        return {"age": self.age_head(h).squeeze(1), "gender_logit": self.gender_head(h).squeeze(1)}


@register_model
def custom_cnn(img_size: int = 128, dropout: float = 0.5) -> CustomCNN:
    return CustomCNN(img_size=img_size, dropout=dropout)
