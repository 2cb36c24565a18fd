"""Batched augmentation with kornia, run on the training device (GPU when there is one).

Works on float NCHW images in [0, 1], before normalisation. Only the training split is augmented.
"""
from __future__ import annotations

import kornia.augmentation as K
from torch import nn


def coursework_augmentation() -> nn.Module:
    """The coursework's Keras generator: rotation 15 deg, zoom 0.1, horizontal flip, brightness,
    contrast 0.1, hue 0.1. Border pixels are repeated, as Keras' default fill_mode='nearest' does."""
    return K.AugmentationSequential(
        K.RandomAffine(degrees=15.0, scale=(0.9, 1.1), padding_mode="border", p=1.0),
        K.RandomHorizontalFlip(p=0.5),
        K.ColorJitter(brightness=0.1, contrast=0.1, hue=0.1, p=1.0),
    )


def paper_augmentation() -> nn.Module:
    """The paper's augmentation: flip, rotation, scaling and Gaussian noise, each applied with a
    probability of 0.5. The paper names the operations, not their ranges: +-20 degrees, scale 0.8-1.2
    and noise std 0.02 (on [0, 1] pixels) are this project's choices."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomAffine(degrees=20.0, padding_mode="border", p=0.5),
        K.RandomAffine(degrees=0.0, scale=(0.8, 1.2), padding_mode="border", p=0.5),
        K.RandomGaussianNoise(mean=0.0, std=0.02, p=0.5),
    )


def phone_augmentation() -> nn.Module:
    """What a phone adds to a face crop: its detector's box jitters (a few % shift, +-10% scale, +-10 degrees
    of roll left after eye alignment), mirror images, and camera colour, exposure and white balance."""
    return K.AugmentationSequential(
        K.RandomHorizontalFlip(p=0.5),
        K.RandomAffine(degrees=10.0, translate=(0.05, 0.05), scale=(0.9, 1.1), padding_mode="border", p=0.8),
        K.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.8),
        K.RandomGrayscale(p=0.05),
    )


def phone_occlusion_augmentation() -> nn.Module:
    """The phone's jitter, then, on half the faces, a grey rectangle over 2-20% of the crop: what hands, phones,
    hair and glasses hide in selfies. It makes the model read age from the whole face, not one patch."""
    return K.AugmentationSequential(
        *phone_augmentation().children(),
        K.RandomErasing(scale=(0.02, 0.2), ratio=(0.3, 3.3), value=0.5, p=0.5),
    )


AUGMENTATIONS = {"coursework": coursework_augmentation, "paper": paper_augmentation, "phone": phone_augmentation,
                 "phone-occlusion": phone_occlusion_augmentation, "none": None}


def build_augmentation(name: str) -> nn.Module | None:
    if name not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {name!r}; choose one of: {', '.join(AUGMENTATIONS)}")
    factory = AUGMENTATIONS[name]
    return factory() if factory else None
