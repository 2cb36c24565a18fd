"""Model C: MA-SFV2, ShuffleNetV2 with mixed attention (Liu et al., Symmetry 2020).

Backbone: ShuffleNetV2 (Ma et al. 2018) at width 0.5/1.0/1.5/2.0, stages of 4/8/4 units (the
first of each downsamples). In every basic (stride-1) unit the branch output passes SE channel
attention, then CBAM spatial attention (channel mean and max -> 7x7 conv -> sigmoid), then a
residual add of the branch input, before the concat and channel shuffle. ``attention=False`` gives
the plain SFV2 of the paper's ablation.

Age head (the paper's): global pool -> FC 101 (ages 0..100) -> LastFC 1, the regression neuron,
which reads the softmax over the 101 bins and starts out equal to its expectation. Training uses
cross-entropy over the bins plus L1 on the regression neuron. ``age_output`` picks which estimate
``forward`` reports as "age": "expectation" (sum of p_i * i; the paper's), "regression" (LastFC) or "median"
(of the softmax; ``edge_age.models.age_bins``).

Gender head: a linear layer on the pooled features. This is this project's extension: the paper
estimates age only.
"""
from __future__ import annotations

import torch
from torch import nn

from edge_age.models.age_bins import AGE_READOUTS, NUM_AGE_BINS, AgeBinsReadout
from edge_age.registry import IMAGENET_MEAN, IMAGENET_STD, AgeGenderModel, InputSpec, register_model

STAGE_REPEATS = (4, 8, 4)
STAGE_CHANNELS = {
    0.5: (24, 48, 96, 192, 1024),
    1.0: (24, 116, 232, 464, 1024),
    1.5: (24, 176, 352, 704, 1024),
    2.0: (24, 244, 488, 976, 2048),
}


def channel_shuffle(x: torch.Tensor, groups: int = 2) -> torch.Tensor:
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class SqueezeExcite(nn.Module):
    """SE channel attention (Hu et al.): global pool -> FC/r -> ReLU -> FC -> sigmoid -> scale."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels // reduction, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels // reduction, channels, 1),
            nn.Sigmoid(),
        )

    def forward(self, x):
        return x * self.gate(x)


class SpatialAttention(nn.Module):
    """CBAM spatial attention (Woo et al.): [mean_c, max_c] -> 7x7 conv -> sigmoid -> scale."""

    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.conv = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x):
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv(pooled))


class MaxPoolAfterReLU(nn.Module):
    """3x3/2 max-pool with one pixel of padding, on an input that a ReLU made non-negative: zero padding then
    gives the same answers as PyTorch's -inf padding, and it exports as a plain PAD, which LiteRT's XNNPACK
    delegate runs, instead of a PADV2 with -inf, which it does not (the graph fell into two partitions)."""

    def forward(self, x):
        return nn.functional.max_pool2d(nn.functional.pad(x, (1, 1, 1, 1)), 3, 2)


def _conv_bn(in_ch, out_ch, kernel, stride=1, groups=1, relu=True):
    layers = [nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False), nn.BatchNorm2d(out_ch)]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return layers


class ShuffleUnit(nn.Module):
    """A ShuffleNetV2 unit; stride 2 downsamples (no attention), stride 1 is the basic unit."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, attention: bool):
        super().__init__()
        self.stride = stride
        branch_ch = out_ch // 2
        branch_in = in_ch if stride == 2 else branch_ch
        self.branch = nn.Sequential(
            *_conv_bn(branch_in, branch_ch, 1),
            *_conv_bn(branch_ch, branch_ch, 3, stride, groups=branch_ch, relu=False),
            *_conv_bn(branch_ch, branch_ch, 1),
        )
        if stride == 2:
            self.shortcut = nn.Sequential(
                *_conv_bn(in_ch, in_ch, 3, 2, groups=in_ch, relu=False), *_conv_bn(in_ch, branch_ch, 1)
            )
            self.attention = None
        else:
            self.attention = nn.Sequential(SqueezeExcite(branch_ch), SpatialAttention()) if attention else None

    def forward(self, x):
        if self.stride == 2:
            return channel_shuffle(torch.cat([self.shortcut(x), self.branch(x)], dim=1), 2)
        half = x.shape[1] // 2  # two slices, not chunk(): in a full-int8 export a slice keeps its input's grid
        kept, processed = x[:, :half], x[:, half:]
        branch_out = self.branch(processed)
        if self.attention is not None:
            branch_out = self.attention(branch_out) + processed
        return channel_shuffle(torch.cat([kept, branch_out], dim=1), 2)


class MASFV2(AgeGenderModel):
    description = "MA-SFV2 (Symmetry 2020): ShuffleNetV2 + SE/CBAM attention, 101-bin age head + regression neuron"
    head_modules = ("fc", "age_readout", "last_fc", "gender_head")
    listed_variants = (*({"width": w} for w in sorted(STAGE_CHANNELS)), {"width": 2.0, "attention": False})

    def __init__(self, width: float = 2.0, img_size: int = 224, attention: bool = True, age_output: str = "expectation"):
        super().__init__()
        if width not in STAGE_CHANNELS:
            raise ValueError(f"ma_sfv2 width must be one of {sorted(STAGE_CHANNELS)}, got {width}")
        if age_output not in (*AGE_READOUTS, "regression"):
            raise ValueError(f"age_output must be one of {', '.join((*AGE_READOUTS, 'regression'))}, "
                             f"got {age_output!r}")
        if img_size % 32:
            raise ValueError(f"ma_sfv2 needs an input size divisible by 32, got {img_size}")
        self.input_spec = InputSpec(size=img_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.age_output = age_output
        channels = STAGE_CHANNELS[width]
        self.stem = nn.Sequential(*_conv_bn(3, channels[0], 3, 2), MaxPoolAfterReLU())
        stages, in_ch = [], channels[0]
        for repeats, out_ch in zip(STAGE_REPEATS, channels[1:4]):
            units = [ShuffleUnit(in_ch, out_ch, 2, attention)]
            units += [ShuffleUnit(out_ch, out_ch, 1, attention) for _ in range(repeats - 1)]
            stages.append(nn.Sequential(*units))
            in_ch = out_ch
        self.stages = nn.Sequential(*stages)
        self.conv5 = nn.Sequential(*_conv_bn(in_ch, channels[4], 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels[4], NUM_AGE_BINS)
        self.last_fc = nn.Linear(NUM_AGE_BINS, 1)
        self.gender_head = nn.Linear(channels[4], 1)
        with torch.no_grad():  # start the regression neuron at the softmax expectation
            self.last_fc.weight.copy_(torch.arange(NUM_AGE_BINS, dtype=torch.float32).view(1, -1))
            self.last_fc.bias.zero_()
        self.age_readout = AgeBinsReadout()

    def forward_features(self, x):
        return self.pool(self.conv5(self.stages(self.stem(x)))).flatten(1)

    def forward_head(self, pooled):
        age_logits = self.fc(pooled)
        ages = {**self.age_readout(age_logits),
                "age_regression": self.last_fc(torch.softmax(age_logits, dim=1)).squeeze(1)}
        return {
            "age": ages[f"age_{self.age_output}"],
            "gender_logit": self.gender_head(pooled).squeeze(1),
            "age_logits": age_logits,
            **ages,
        }


@register_model
def ma_sfv2(width: float = 2.0, img_size: int = 224, attention: bool = True, age_output: str = "expectation") -> MASFV2:
    return MASFV2(width=width, img_size=img_size, attention=attention, age_output=age_output)
