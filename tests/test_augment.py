"""The training augmentations, on real faces: each keeps images in shape and in range and changes them, and
phone-occlusion hides a grey patch on about half of the faces while plain phone jitter hides none."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edge_age.augment import AUGMENTATIONS, build_augmentation
from edge_age.images import load_for_model


@pytest.fixture(scope="module")
def real_faces(small_faces_dir) -> torch.Tensor:
    """32 real UTKFace chips at 128 px as NCHW floats in [0, 1]."""
    files = sorted(small_faces_dir.iterdir())[:32]
    images = np.stack([load_for_model(f, 128) for f in files]).astype(np.float32) / 255
    return torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()


def _occluded_share(images: torch.Tensor) -> torch.Tensor:
    """Per image, the share of pixels that are exactly the erasing grey (0.5) in all three channels."""
    return (images == 0.5).all(dim=1).float().mean(dim=(1, 2))


@pytest.mark.parametrize("name", [n for n, factory in AUGMENTATIONS.items() if factory is not None])
def test_each_augmentation_changes_real_faces_and_keeps_them_in_range(name, real_faces):
    torch.manual_seed(0)
    out = build_augmentation(name)(real_faces.clone())
    assert out.shape == real_faces.shape
    margin = 0.15 if name == "paper" else 0.0  # the paper's additive Gaussian noise (std 0.02) is not clipped
    assert float(out.min()) >= -margin and float(out.max()) <= 1.0 + margin
    assert (out - real_faces).abs().mean() > 0.01


def test_phone_occlusion_hides_a_patch_on_about_half_the_faces(real_faces):
    torch.manual_seed(0)
    occluded = _occluded_share(build_augmentation("phone-occlusion")(real_faces.clone()))
    hidden = occluded > 0.015  # the smallest patch covers 2% of the crop
    assert 8 <= int(hidden.sum()) <= 24, occluded
    assert float(occluded.max()) <= 0.21
    torch.manual_seed(0)
    assert float(_occluded_share(build_augmentation("phone")(real_faces.clone())).max()) < 0.015


def test_unknown_augmentation_names_the_choices():
    with pytest.raises(ValueError, match="phone-occlusion"):
        build_augmentation("cutout")
