"""Reading an image file into the array the project works with: (H, W, 3) uint8 BGR, OpenCV's order.

``read_image`` turns any picture Pillow or OpenCV can decode (EXIF-rotated JPEGs, 16-bit and float TIFFs, greyscale,
BGRA) into that one format, and refuses pictures too large to decode safely from their header. Anything that cannot be
read raises ``InputError`` with a message that names the file and says why, so a caller that reads many files (``occau
prepare faces``, ``occau detect``) can record it and go on with the next one.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 100_000_000  # refuse larger pictures before decoding them (a 100 MP RGB image is 300 MB)


class InputError(Exception):
    """One input cannot be read; ``str(err)`` names it and says why."""


def read_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode an image file -> (H, W, 3) uint8 BGR, upright by its EXIF orientation; refuses huge pictures from
    their header, before decoding.

    16-bit, 32-bit integer and float pictures (scientific cameras, TIFF exports) are scaled to 8 bits, not clipped:
    clipping turns a 16-bit face white, and the detector then reports "no face". Formats Pillow cannot open (e.g.
    3-channel float TIFF) are read with OpenCV."""
    try:
        with warnings.catch_warnings():  # the size is checked right below, with a clearer message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > max_pixels:
                raise InputError(_too_big(path, w, h, max_pixels))
            im = ImageOps.exif_transpose(im)
            if im.mode.startswith(("I", "F")):  # I;16*, I (32-bit int), F (32-bit float): one channel, > 8 bits
                return to_bgr8(np.asarray(im), path)
            rgb = np.asarray(im.convert("RGB"))
    except Image.DecompressionBombError as err:  # PIL refuses on its own above ~179 MP
        raise InputError(f"{path}: image too large to decode safely ({err})") from None
    except UnidentifiedImageError:
        return _read_with_opencv(path, max_pixels)
    except (OSError, SyntaxError, ValueError) as err:
        raise InputError(f"{path}: cannot decode image: {err}") from None
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


def _read_with_opencv(path: Path, max_pixels: int) -> np.ndarray:
    """What Pillow cannot identify, at its own bit depth; an error naming the file if OpenCV cannot either."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise InputError(f"{path}: not a readable image (corrupt, or not an image file despite its name)")
    if image.shape[0] * image.shape[1] > max_pixels:
        raise InputError(_too_big(path, image.shape[1], image.shape[0], max_pixels))
    return to_bgr8(image, path)


def to_bgr8(image: np.ndarray, path: Path | str = "image") -> np.ndarray:
    """Any bit depth, 1, 3 or 4 channels (BGR(A) order when 3-4) -> (H, W, 3) uint8 BGR.

    uint16 is divided by 257 (65535 -> 255). Wider integers (Pillow's 32-bit "I" mode, which also carries 16-bit
    greyscale PNGs) use the smallest of the 8/16-bit ranges that holds their maximum, else their own maximum. Floats
    are taken as 0..1 when their maximum is at most 1, else as 0..255; NaN becomes 0."""
    if image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3)):
        raise InputError(f"{path}: unsupported image layout {image.shape} (expected grey, BGR or BGRA)")
    if image.dtype == np.uint8:
        pixels = image
    else:
        values = np.nan_to_num(image.astype(np.float64), nan=0.0)
        top = float(values.max()) if values.size else 0.0
        if image.dtype.kind == "f":
            scale = 255.0 if top <= 1.0 else 1.0
        elif image.dtype == np.uint16:
            scale = 255.0 / 65535.0
        else:
            scale = 255.0 / next((r for r in (255.0, 65535.0) if top <= r), max(top, 1.0))
        pixels = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
    if pixels.ndim == 2 or pixels.shape[2] == 1:
        pixels = cv2.cvtColor(pixels.reshape(pixels.shape[:2]), cv2.COLOR_GRAY2BGR)
    return np.ascontiguousarray(pixels)


def _too_big(path: Path, w: int, h: int, max_pixels: int) -> str:
    return (f"{path}: image is {w} x {h} = {w * h / 1e6:.0f} MP, above the limit of {max_pixels / 1e6:.0f} MP "
            "(raise max_pixels / --max-pixels, or downscale it)")
