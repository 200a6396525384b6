"""What covered pixels of the geometric conditions are painted with (PROTOCOL §2).

``black`` is the default; ``mean`` uses the dataset mean colour (by default the ImageNet mean, which every occau
model normalises to zero, so a ``mean`` patch reaches the network as an all-zero patch); ``noise`` is i.i.d. uniform
colour noise; ``texture`` is a random 1/f ("fractal") pattern between two random colours, a cheap stand-in for the
cloth, hair and foliage that occlude faces in the wild.
"""

from __future__ import annotations

import numpy as np

from occau.data.transforms import IMAGENET_MEAN

FILLS: tuple[str, ...] = ("black", "mean", "noise", "texture")

IMAGENET_MEAN_RGB: tuple[int, int, int] = tuple(round(255 * m) for m in IMAGENET_MEAN)  # (124, 116, 104)


def fill_image(
    fill: str, size: int, rng: np.random.Generator, mean_color: tuple[int, int, int] | None = None
) -> np.ndarray:
    """A full (S, S, 3) uint8 canvas of the fill; the caller copies it into the covered pixels."""
    if fill == "black":
        return np.zeros((size, size, 3), dtype=np.uint8)
    if fill == "mean":
        color = np.asarray(IMAGENET_MEAN_RGB if mean_color is None else mean_color)
        if color.shape != (3,) or color.min() < 0 or color.max() > 255:
            raise ValueError(f"mean_color must be three values in 0..255, got {mean_color!r}")
        return np.broadcast_to(color.astype(np.uint8), (size, size, 3)).copy()
    if fill == "noise":
        return rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    if fill == "texture":
        return fractal_texture(size, rng)
    raise ValueError(f"unknown fill {fill!r}; known: {FILLS}")


def fractal_noise(size: int, rng: np.random.Generator, beta: float) -> np.ndarray:
    """(S, S) float in [0, 1] with a 1/f^beta power spectrum: beta ~2 looks like clouds, marble or bark."""
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    radius = np.sqrt(fx**2 + fy**2)
    radius[0, 0] = 1.0  # the DC term is removed after the inverse transform anyway
    spectrum = rng.standard_normal((size, size // 2 + 1)) + 1j * rng.standard_normal((size, size // 2 + 1))
    field = np.fft.irfft2(spectrum / radius ** (beta / 2), s=(size, size))  # (S, S)
    field -= field.min()
    return field / max(field.max(), 1e-12)


def fractal_texture(size: int, rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) uint8: fractal noise between a dark and a light shade of one muted colour, plus fine grain.

    Muted (part-grey) colours and a guaranteed light/dark contrast read as cloth, bark or stone rather than as a
    flat or psychedelic patch.
    """
    t = fractal_noise(size, rng, beta=rng.uniform(2.2, 3.2))[..., None]  # (S, S, 1)
    hue = rng.uniform(0, 255, 3)
    muted = 128.0 + rng.uniform(0.2, 0.6) * (hue - 128.0)
    dark = rng.uniform(0.25, 0.7)
    low, high = muted * dark, muted * (dark + rng.uniform(0.5, 0.9))
    grain = rng.normal(0.0, 4.0, size=(size, size, 3))
    return np.clip(low + (high - low) * t + grain, 0, 255).astype(np.uint8)
