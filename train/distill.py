"""Distillation: a student learns from the averaged answers of finished runs (its teachers) beside the labels.

A teacher sees the student's augmented batch, resized to its own input size and normalised its own way. The age
target becomes ``(1 - w) * Gaussian(label) + w * teachers' mean distribution`` and the gender target
``(1 - w) * label + w * teachers' mean probability`` (``w``: the weight). Teachers are source runs
(``train.source_run``): recorded by sha256, refused if they trained on the student's validation or test faces.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from edge_age.registry import AgeGenderModel
from edge_age.train.source_run import describe_source_run, load_source_model


def describe_teachers(run_dirs: list[str], weight: float) -> dict:
    """The recipe's "distill" entry for these run folders: each best.pt's path and sha256, and the weight (in
    (0, 1], as --distill-weight's parser ensures)."""
    return {"teachers": [describe_source_run(run_dir, "--teacher") for run_dir in run_dirs], "weight": float(weight)}


@dataclass
class Teachers:
    """The teacher models (eval mode, on the student's device) and the weight of their answers in the targets."""

    models: list[AgeGenderModel]
    weight: float

    @torch.no_grad()
    def soft_targets(self, x01: torch.Tensor, amp_dtype) -> dict:
        """Mean age distribution (N x 101) and mean gender probability (N) of the teachers on a [0, 1] batch."""
        age_probs, gender_probs = [], []
        for model in self.models:
            size = model.input_spec.size
            x = x01 if x01.shape[-1] == size else F.interpolate(x01, size=(size, size), mode="bilinear",
                                                                 align_corners=False, antialias=size < x01.shape[-1])
            x = model.input_spec.normalize_float(x).contiguous(memory_format=torch.channels_last)
            with torch.autocast(x.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                out = model(x)
            age_probs.append(torch.softmax(out["age_logits"].float(), dim=1))
            gender_probs.append(torch.sigmoid(out["gender_logit"].float()))
        return {"age_probs": torch.stack(age_probs).mean(0), "gender_prob": torch.stack(gender_probs).mean(0),
                "weight": self.weight}


def load_teachers(distill: dict, loss_weights: dict, split: dict, device: torch.device) -> Teachers:
    """Load the recipe's teachers after checking each file's sha256, its 101-bin age head and that it never trained
    on the student's validation or test faces (``split``: the student's)."""
    if not loss_weights.get("age_ldl"):
        raise ValueError("distillation mixes the teachers' answers into the age_ldl target, and this recipe's loss "
                         f"has no age_ldl term ({loss_weights}); add one, e.g. --loss age_ldl=1,age_l1=0.1,gender_bce=1")
    models = []
    for teacher in distill["teachers"]:
        model = load_source_model(teacher, split, "teacher")
        with torch.no_grad():
            outputs = model(torch.zeros(1, 3, model.input_spec.size, model.input_spec.size))
        if "age_logits" not in outputs:
            raise ValueError(f"teacher {teacher['checkpoint']} ({model.model_name}) has no 101-bin age head to learn from")
        models.append(model.to(device).to(memory_format=torch.channels_last).eval())
    return Teachers(models, float(distill["weight"]))
