"""Distillation: a student learns from the averaged answers of finished runs (its teachers) beside the labels.

A teacher sees the student's augmented batch, resized to its own input size and normalised its own way. The age
target becomes ``(1 - w) * Gaussian(label) + w * teachers' mean distribution`` and the gender target
``(1 - w) * label + w * teachers' mean probability`` (``w``: the weight). A teacher must not have trained on the
student's validation or test faces (its run's split.json is checked), or the student's scores would carry what the
teacher saw. The recipe records each teacher's best.pt and its sha256, so a resumed student learns from the very
same files or stops with a clear error.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from edge_age.checkpoint import load_model
from edge_age.data import load_split
from edge_age.io import sha256_file
from edge_age.registry import AgeGenderModel


def describe_teachers(run_dirs: list[str], weight: float) -> dict:
    """The recipe's "distill" entry for these run folders: each best.pt's path and sha256, and the weight (in
    (0, 1], as --distill-weight's parser ensures)."""
    teachers = []
    for run_dir in run_dirs:
        best = Path(run_dir) / "best.pt"
        if not best.is_file():
            raise FileNotFoundError(f"--teacher {run_dir}: no best.pt there; pass the folder of a finished run")
        teachers.append({"checkpoint": str(best), "sha256": sha256_file(best)})
    return {"teachers": teachers, "weight": float(weight)}


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
        path = Path(teacher["checkpoint"])
        if not path.is_file():
            raise FileNotFoundError(f"teacher checkpoint {path} is missing; the run was started with it "
                                    f"(sha256 {teacher['sha256'][:16]}...): restore it")
        digest = sha256_file(path)
        if digest != teacher["sha256"]:
            raise ValueError(f"teacher checkpoint {path} has sha256 {digest[:16]}..., not the {teacher['sha256'][:16]}... "
                             "recorded when this run started: a different or damaged file; restore the original")
        model, _ = load_model(path)
        with torch.no_grad():
            outputs = model(torch.zeros(1, 3, model.input_spec.size, model.input_spec.size))
        if "age_logits" not in outputs:
            raise ValueError(f"teacher {path} ({model.model_name}) has no 101-bin age head to learn from")
        _check_no_leak(path, split)
        models.append(model.to(device).to(memory_format=torch.channels_last).eval())
    return Teachers(models, float(distill["weight"]))


def _check_no_leak(checkpoint: Path, split: dict) -> None:
    """Refuse a teacher whose training faces include the student's validation or test faces."""
    teacher_split_path = checkpoint.parent / "split.json"
    if not teacher_split_path.is_file():
        raise FileNotFoundError(f"teacher {checkpoint}: no split.json beside it, so nothing shows that it never "
                                "trained on the student's validation or test faces; use a run folder with its split")
    trained_on = set(load_split(teacher_split_path)["train"])
    for part in ("val", "test"):
        seen = trained_on.intersection(split[part])
        if seen:
            raise ValueError(f"teacher {checkpoint} trained on {len(seen)} of the student's {part} faces (e.g. "
                             f"{sorted(seen)[0]}): its answers would leak them; train the student on the teacher's "
                             f"split (--split {teacher_split_path})")
