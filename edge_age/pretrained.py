"""Pretrained weights a model declares: which file, its checksum, and where a user gets it.

Nothing is downloaded at run time. A model names its file (``PretrainedWeights``) the way timm's
``pretrained_cfg`` does; ``locate`` finds it (an explicit path, or inside the pip package that ships
it), checks its sha256 and loads it with ``weights_only=True``. A missing file is an error that names
the file and the pip line or URL that provides it.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch

from edge_age.io import sha256_file


@dataclass(frozen=True)
class PretrainedWeights:
    """One weights file: its name, sha256, licence and where it comes from."""

    file: str
    sha256: str | None  # None where the file has several published versions (VGG16's is checked by its keys)
    source: str  # what to tell a user who lacks it: a pip line or a URL
    license: str
    package: str | None = None  # import name of a pip package that ships the file under <package>/models/

    def find(self, path: str | Path | None = None) -> Path:
        """The file to load: ``path`` when given, else the copy inside the installed package."""
        if path is not None:
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"pretrained weights not found: {path}. Supply {self.file} ({self.source}).")
            return path
        if self.package:
            spec = importlib.util.find_spec(self.package)
            if spec is not None and spec.origin:
                shipped = Path(spec.origin).parent / "models" / self.file
                if shipped.is_file():
                    return shipped
        raise FileNotFoundError(f"pretrained weights {self.file} are not installed: {self.source}, "
                                f"or pass the file with --backbone-weights PATH/{self.file}")

    def load_state_dict(self, path: str | Path | None = None) -> tuple[dict, Path]:
        """Find, verify (size > 0, sha256) and load the state dict; clear errors for anything else."""
        path = self.find(path)
        if path.stat().st_size == 0:
            raise ValueError(f"{path} is empty; supply {self.file} ({self.source})")
        if self.sha256 is not None:
            digest = sha256_file(path)
            if digest != self.sha256:
                raise ValueError(f"{path} has sha256 {digest[:16]}..., not {self.file}'s {self.sha256[:16]}...: "
                                 f"a different or damaged file; supply {self.file} ({self.source})")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # truncated or not a torch file: say so, do not guess
            raise ValueError(f"{path} is not a readable PyTorch state dict ({type(err).__name__}); "
                             f"supply {self.file} ({self.source})") from None
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict; supply {self.file}")
        return state, path


def matching_tensors(expected: dict, given: dict, source, what: str) -> dict:
    """``given`` restricted to the keys of ``expected``, refused unless every key is there with the same shape."""
    missing = sorted(set(expected) - set(given))
    if missing:
        raise ValueError(f"{source} is not {what}: it lacks {missing[0]} ({len(missing)} of {len(expected)} tensors "
                         "missing)")
    for key, tensor in expected.items():
        if given[key].shape != tensor.shape:
            raise ValueError(f"{source}: {key} has shape {tuple(given[key].shape)}, expected {tuple(tensor.shape)}")
    return {key: given[key] for key in expected}
