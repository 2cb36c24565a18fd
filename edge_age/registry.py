"""Model registry: every stage names a model by a string, and every model carries its input spec.

Modelled on timm's ``@register_model`` / ``create_model`` and torchvision's weights metadata:
a model built here knows how to rebuild itself (``model_name`` + ``options``) and what its input
must look like (``input_spec``), so checkpoints and exported files can carry both in a manifest.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import torch
from torch import nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: What each model output means; every model returns a dict with (a subset of) these keys.
OUTPUT_MEANINGS = {
    "age": "age in years (float)",
    "gender_logit": "gender logit; sigmoid gives P(female) (0 male, 1 female)",
    "age_logits": "101-bin models (MA-SFV2, EfficientNet-Lite): 101 logits over ages 0..100",
    "age_expectation": "101-bin models: softmax expectation over the 101 bins, in years",
    "age_median": "101-bin models: median of the softmax over the 101 bins, in years",
    "age_regression": "MA-SFV2 only: the LastFC regression neuron, in years",
}


@dataclass(frozen=True)
class InputSpec:
    """How an image becomes the model's input: RGB uint8, resized to size x size, x/255, then (x-mean)/std."""

    size: int
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (1.0, 1.0, 1.0)
    channel_order: str = "RGB"
    layout: str = "NCHW"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "InputSpec":
        return cls(
            size=int(data["size"]),
            mean=tuple(float(v) for v in data["mean"]),
            std=tuple(float(v) for v in data["std"]),
            channel_order=data.get("channel_order", "RGB"),
            layout=data.get("layout", "NCHW"),
        )

    def normalize(self, images_uint8_nhwc: torch.Tensor) -> torch.Tensor:
        """uint8 NHWC (any device) -> float NCHW, scaled and normalised as this spec says."""
        x = images_uint8_nhwc.permute(0, 3, 1, 2).float().div_(255.0)
        return self.normalize_float(x)

    def normalize_float(self, x_nchw_01: torch.Tensor) -> torch.Tensor:
        """float NCHW in [0, 1] -> normalised model input."""
        mean = torch.tensor(self.mean, device=x_nchw_01.device, dtype=x_nchw_01.dtype).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x_nchw_01.device, dtype=x_nchw_01.dtype).view(1, 3, 1, 1)
        return (x_nchw_01 - mean) / std


class AgeGenderModel(nn.Module):
    """Base of the registered models: forward(x) returns {"age", "gender_logit"[, "age_logits", ...]}.

    Each model splits into a trunk (``forward_features``: image -> feature vector) and small output
    heads (``forward_head``), as timm does; the exporter quantises the trunk and keeps the heads in
    float, where int8 would clip the age range and the 101-bin softmax.
    """

    model_name: str = ""
    options: dict = {}
    input_spec: InputSpec
    description: str = ""
    #: the output heads (attribute names), kept in float when the trunk is quantised
    head_modules: tuple[str, ...] = ("age_head", "gender_head")
    #: the ImageNet (or other) weights this model can start from (``edge_age.pretrained.PretrainedWeights``)
    pretrained_weights = None
    #: option sets worth a row in ``edge-age models`` (widths, variants, ablations)
    listed_variants: tuple[dict, ...] = ({},)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.forward_head(self.forward_features(x))

    def start_age_at(self, mean_age: float) -> None:
        """Start a linear age output (``age_head``) at the training set's mean age. From scratch with a small
        learning rate (VGG16's Adam 1e-4) the head's bias moves about lr per step and would take ~10^5 steps to
        reach a typical age; models whose age is a softmax expectation have no such bias and keep theirs."""
        head = getattr(self, "age_head", None)
        if isinstance(head, nn.Linear) and head.out_features == 1:
            with torch.no_grad():
                head.bias.fill_(mean_age)

    def set_trainable(self, trainable: str) -> None:
        """Which parameters a training phase updates; models with frozen stages override this."""
        if trainable != "all":
            raise ValueError(f"{self.model_name} trains with trainable='all', not {trainable!r}")
        self.requires_grad_(True)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Trainable parameters by group, so a recipe can give each its own learning rate (``lr_mult``)."""
        return {"all": [p for p in self.parameters() if p.requires_grad]}

    def load_pretrained(self, path=None, allow_download: bool = False) -> str:
        """Load ``pretrained_weights`` from ``path``, or where the model knows to find them (a download only with
        ``allow_download``); returns where they came from."""
        raise ValueError(f"{self.model_name} declares no pretrained weights; train it from scratch (backbone none)")

    @property
    def file_stem(self) -> str:
        """How exported files of this model begin (``<stem>_int8.tflite``); variants that change the network
        override it, so a Lite1 export is not named after Lite0."""
        return self.model_name

    def config(self) -> dict:
        """What a checkpoint needs to rebuild this model with ``create_model``."""
        return {"name": self.model_name, "options": dict(self.options), "input_spec": self.input_spec.to_dict()}


_REGISTRY: dict[str, Callable[..., AgeGenderModel]] = {}


def register_model(fn: Callable[..., AgeGenderModel]) -> Callable[..., AgeGenderModel]:
    """Decorator: make a model constructor available to ``create_model`` under its function name."""
    name = fn.__name__
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    _REGISTRY[name] = fn
    return fn


def list_models() -> list[str]:
    _ensure_models_imported()
    return sorted(_REGISTRY)


def create_model(name: str, **options) -> AgeGenderModel:
    """Build a registered model by name; ``options`` are the constructor's keyword arguments."""
    _ensure_models_imported()
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(_REGISTRY))}")
    try:
        model = _REGISTRY[name](**options)
    except TypeError as err:
        raise ValueError(f"bad options for model {name!r}: {err}") from err
    model.model_name = name
    model.options = dict(options)
    return model


def model_from_config(config: dict) -> AgeGenderModel:
    """Rebuild a model from ``AgeGenderModel.config()`` (as stored in checkpoints and manifests)."""
    return create_model(config["name"], **config.get("options", {}))


def _ensure_models_imported() -> None:
    # Importing the package registers the models; done lazily so registry has no import cycle.
    import edge_age.models  # noqa: F401
