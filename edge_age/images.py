"""Reading an image file into the RGB uint8 array every stage starts from."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

# Past this many pixels PIL warns of a decompression bomb; a phone photo is far below it.
Image.MAX_IMAGE_PIXELS = 200_000_000


class ImageReadError(ValueError):
    """An image file could not be read; the message says which file and why."""


def read_rgb(path: str | Path) -> Image.Image:
    """Open any PIL-readable image as upright RGB: EXIF orientation applied; grey, palette,
    RGBA (on black), CMYK and 16-bit images converted. Raises ImageReadError with the reason."""
    path = Path(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as opened:
                opened.load()  # truncated or corrupt files fail here, not later
                image = ImageOps.exif_transpose(opened)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except Exception as err:
        raise ImageReadError(f"{path}: not a readable image ({type(err).__name__}: {err})") from None
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 65535.0 if array.max() > 255 else 255.0
        image = Image.fromarray(np.clip(array / scale * 255.0, 0, 255).astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def resize_square(image: Image.Image, size: int) -> np.ndarray:
    """Resize to size x size (bilinear, antialiased) and return HxWx3 uint8: the models' resampling."""
    if image.size != (size, size):
        image = image.resize((size, size), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def load_for_model(path: str | Path, size: int) -> np.ndarray:
    """File -> HxWx3 uint8 RGB at the model's input size (a face chip, already cropped)."""
    return resize_square(read_rgb(path), size)
