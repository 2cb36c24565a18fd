"""Finished runs whose weights a new run uses: as teachers (distillation) or as its starting point (--init).

Either way the new run records each best.pt's path and sha256, so a resumed run uses the very same files or stops
with a clear error, and refuses a source run that trained on its validation or test faces: its scores would then
carry what the source saw.
"""
from __future__ import annotations

from pathlib import Path

from edge_age.checkpoint import load_model
from edge_age.data import load_split
from edge_age.io import sha256_file
from edge_age.registry import AgeGenderModel


def describe_source_run(run_dir: str, flag: str) -> dict:
    """{"checkpoint", "sha256"} of the run folder's best.pt (``flag`` names the option in errors)."""
    best = Path(run_dir) / "best.pt"
    if not best.is_file():
        raise FileNotFoundError(f"{flag} {run_dir}: no best.pt there; pass the folder of a finished run")
    return {"checkpoint": str(best), "sha256": sha256_file(best)}


def load_source_model(entry: dict, split: dict, role: str) -> AgeGenderModel:
    """The model of a recorded source run, after checking its sha256 and that it never trained on the new run's
    validation or test faces (``split``: the new run's; ``role``: 'teacher' or 'starting point', for errors)."""
    path = Path(entry["checkpoint"])
    if not path.is_file():
        raise FileNotFoundError(f"{role} checkpoint {path} is missing; the run was started with it "
                                f"(sha256 {entry['sha256'][:16]}...): restore it")
    digest = sha256_file(path)
    if digest != entry["sha256"]:
        raise ValueError(f"{role} checkpoint {path} has sha256 {digest[:16]}..., not the {entry['sha256'][:16]}... "
                         "recorded when this run started: a different or damaged file; restore the original")
    model, _ = load_model(path)
    _check_no_leak(path, split, role)
    return model


def _check_no_leak(checkpoint: Path, split: dict, role: str) -> None:
    """Refuse a source run whose training faces include the new run's validation or test faces."""
    source_split_path = checkpoint.parent / "split.json"
    if not source_split_path.is_file():
        raise FileNotFoundError(f"{role} {checkpoint}: no split.json beside it, so nothing shows that it never "
                                "trained on this run's validation or test faces; use a run folder with its split")
    trained_on = set(load_split(source_split_path)["train"])
    for part in ("val", "test"):
        seen = trained_on.intersection(split[part])
        if seen:
            raise ValueError(f"{role} {checkpoint} trained on {len(seen)} of this run's {part} faces (e.g. "
                             f"{sorted(seen)[0]}): its answers would leak them; train on its split "
                             f"(--split {source_split_path})")
