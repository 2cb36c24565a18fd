"""Model B: the coursework report's VGG16 transfer-learning model.

The convolutional base is laid out exactly like torchvision's ``vgg16().features`` so that the
official ImageNet file ``vgg16-397923af.pth`` loads into it unchanged; torchvision itself is not
needed. Head, as in the report: flatten -> Dense 256 ReLU -> BatchNorm -> Dropout 0.4 ->
Dense 128 ReLU (L2 1e-3) -> BatchNorm -> Dropout 0.4 -> age (linear) and gender (logit).
Training runs in two phases: base frozen, then the last 10 Keras layers unfrozen.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from edge_age.pretrained import PretrainedWeights, matching_tensors
from edge_age.registry import IMAGENET_MEAN, IMAGENET_STD, AgeGenderModel, InputSpec, register_model

VGG16_WEIGHTS_FILE = "vgg16-397923af.pth"
VGG16_WEIGHTS_URL = "https://download.pytorch.org/models/" + VGG16_WEIGHTS_FILE
# (Keras layer name, index in torchvision's vgg16().features), in Keras' order for VGG16 without top.
KERAS_LAYERS = [
    ("block1_conv1", 0), ("block1_conv2", 2), ("block1_pool", 4),
    ("block2_conv1", 5), ("block2_conv2", 7), ("block2_pool", 9),
    ("block3_conv1", 10), ("block3_conv2", 12), ("block3_conv3", 14), ("block3_pool", 16),
    ("block4_conv1", 17), ("block4_conv2", 19), ("block4_conv3", 21), ("block4_pool", 23),
    ("block5_conv1", 24), ("block5_conv2", 26), ("block5_conv3", 28), ("block5_pool", 30),
]
L2_DENSE128 = 1e-3


def _vgg16_features() -> nn.Sequential:
    """torchvision's VGG16 base, He-initialised as torchvision does: PyTorch's default init shrinks the signal
    through 13 ReLU convolutions, and a base trained from scratch (no ImageNet file) then hardly learns."""
    layers, in_ch = [], 3
    for v in (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"):
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            conv = nn.Conv2d(in_ch, v, 3, padding=1)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
            in_ch = v
    return nn.Sequential(*layers)


class VGG16Transfer(AgeGenderModel):
    description = "coursework model B: VGG16 base (ImageNet) + dense 256/128 head, age + gender"
    # torchvision has re-published this file; its keys and shapes are checked instead of one checksum
    pretrained_weights = PretrainedWeights(file=VGG16_WEIGHTS_FILE, sha256=None, source=f"download {VGG16_WEIGHTS_URL}",
                                           license="BSD-3-Clause (torchvision)")

    def __init__(self, img_size: int = 128, dropout: float = 0.4):
        super().__init__()
        if img_size % 32:
            raise ValueError(f"vgg16_transfer needs an input size divisible by 32 (five pools), got {img_size}")
        self.input_spec = InputSpec(size=img_size, mean=IMAGENET_MEAN, std=IMAGENET_STD)
        self.features = _vgg16_features()
        side = img_size // 32
        self.dense256 = nn.Sequential(
            nn.Flatten(), nn.Linear(512 * side * side, 256), nn.ReLU(inplace=True), nn.BatchNorm1d(256), nn.Dropout(dropout)
        )
        self.dense128 = nn.Linear(256, 128)
        self.after128 = nn.Sequential(nn.ReLU(inplace=True), nn.BatchNorm1d(128), nn.Dropout(dropout))
        self.age_head = nn.Linear(128, 1)
        self.gender_head = nn.Linear(128, 1)

    def forward_features(self, x):
        return self.after128(self.dense128(self.dense256(self.features(x))))

    def forward_head(self, h):
        return {"age": self.age_head(h).squeeze(1), "gender_logit": self.gender_head(h).squeeze(1)}

    def regularization_loss(self) -> torch.Tensor:
        """Keras' kernel_regularizer=l2(1e-3) on the Dense 128 layer: 1e-3 * sum(w^2), added to the loss."""
        return L2_DENSE128 * self.dense128.weight.pow(2).sum()

    def set_trainable(self, trainable: str) -> None:
        """'all', 'head' (phase 1: base frozen) or 'last10' (phase 2: the last 10 Keras layers unfrozen)."""
        self.requires_grad_(True)
        if trainable == "head":
            self.freeze_base()
        elif trainable == "last10":
            self.unfreeze_last_keras_layers(10)
        elif trainable != "all":
            raise ValueError(f"unknown trainable setting {trainable!r} for vgg16_transfer: use all, head or last10")

    def load_pretrained(self, path=None, allow_download: bool = False) -> str:
        """The ImageNet base from ``path``, or (``allow_download``) torchvision's copy through torch.hub."""
        if path is None and not allow_download:
            raise ValueError(f"vgg16_transfer starts from ImageNet weights: pass --backbone-weights "
                             f"PATH/{VGG16_WEIGHTS_FILE} or --pretrained (needs internet)")
        path = path or fetch_imagenet_weights()
        load_backbone_weights(self, path)
        return str(path)

    def freeze_base(self) -> None:
        """Phase 1: train only the head."""
        self.features.requires_grad_(False)

    def unfreeze_last_keras_layers(self, count: int = 10) -> list[str]:
        """Phase 2: unfreeze the last ``count`` layers of Keras' VGG16 (pools count as layers, as in Keras).

        With count=10 that is block3_conv3, block 4 and block 5: seven conv layers. Returns their names.
        """
        self.freeze_base()
        chosen = KERAS_LAYERS[-count:]
        for _, index in chosen:
            self.features[index].requires_grad_(True)
        return [name for name, index in chosen if isinstance(self.features[index], nn.Conv2d)]


@register_model
def vgg16_transfer(img_size: int = 128, dropout: float = 0.4) -> VGG16Transfer:
    return VGG16Transfer(img_size=img_size, dropout=dropout)


def load_backbone_weights(model: VGG16Transfer, path: str | os.PathLike) -> None:
    """Load the VGG16 conv base from a torchvision-format state dict (e.g. ``vgg16-397923af.pth``)."""
    state, found = model.pretrained_weights.load_state_dict(path)
    features = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    model.features.load_state_dict(matching_tensors(model.features.state_dict(), features, found,
                                                    "a torchvision VGG16 state dict (features.*)"))


def fetch_imagenet_weights(url: str | None = None) -> Path:
    """Return the cached official ImageNet file, downloading it through torch.hub if possible.

    This machine may be offline; then the error names the file to supply with --backbone-weights.
    ``EDGE_AGE_VGG16_URL`` overrides the URL (a mirror, or tests).
    """
    url = url or os.environ.get("EDGE_AGE_VGG16_URL", VGG16_WEIGHTS_URL)
    cached = Path(torch.hub.get_dir()) / "checkpoints" / VGG16_WEIGHTS_FILE
    if cached.is_file():
        return cached
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), progress=True)
    except Exception as err:
        raise RuntimeError(
            f"--pretrained could not download the ImageNet VGG16 weights from {url} ({type(err).__name__}: {err}). "
            f"This machine may be offline: fetch {VGG16_WEIGHTS_FILE} elsewhere and pass it with "
            f"--backbone-weights PATH (or put it at {cached})."
        ) from err
    return cached
