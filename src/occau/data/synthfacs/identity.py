"""Subjects of SynthFACS: the parameters that make one face look like one person.

An identity is everything that stays fixed across a subject's frames: face and jaw shape, skin, hair, the sizes and
positions of eyes, brows, nose and mouth, lighting and background. Feature positions scatter around the alignment
template (``occau.faces.template``) by about as much as a 5-point aligner leaves them, and the scatter of brow
height, lid aperture and mouth-corner height is of the same order as a FACS A-level action, so an AU can only be read
against the subject's own neutral face.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from occau.faces.template import FIVE_POINTS

RGB = tuple[float, float, float]

# Skin tones from light to dark (RGB); a subject's tone is a random point on this polyline plus a small tint.
_SKIN_TONES = np.array(
    [[246, 214, 190], [234, 190, 160], [214, 166, 128], [188, 134, 98], [150, 100, 70], [104, 68, 48]],
    dtype=np.float64,
)
_HAIR_COLOURS = np.array(
    [[22, 18, 16], [52, 36, 26], [96, 64, 40], [150, 110, 66], [196, 160, 104], [120, 60, 30], [150, 150, 150]],
    dtype=np.float64,
)
_IRIS_COLOURS = np.array([[60, 40, 26], [96, 66, 40], [70, 100, 130], [90, 110, 80], [40, 30, 24]], dtype=np.float64)


@dataclass(frozen=True)
class Identity:
    """Fixed look of one subject. Lengths are in units of the crop side S, colours are RGB 0..255."""

    skin: RGB
    hair: RGB
    brow_colour: RGB
    lip: RGB
    iris: RGB
    background: tuple[RGB, RGB]  # top and bottom of a vertical gradient
    # head outline
    crown_y: float  # top of the head
    face_half_width: float  # at the cheekbones
    jaw_half_width: float  # at the jaw angle
    jaw_y: float
    chin_half_width: float
    chin_y: float
    hairline_y: float
    hair_long: float  # 0 short .. 1 long (how far down the sides hair falls)
    # eyes (image-left eye; the other is mirrored)
    eye_dx: float  # offset of the pair's centre
    eye_dy: float
    eye_spread: float  # change of inter-ocular half-distance
    eye_half_width: float
    eye_upper: float  # upper lid height above the eye centre line
    eye_lower: float  # lower lid depth below it
    eye_tilt: float  # outer corner up (+) or down (-)
    iris_radius: float
    # brows
    brow_gap: float  # eye centre to brow centre line
    brow_thickness: float
    brow_arch: float
    brow_length: float
    # nose and mouth
    nose_half_width: float
    nose_dy: float
    mouth_dy: float
    mouth_half_width: float
    mouth_corner_dy: float  # natural corner height: + down (a "sad" resting mouth), - up
    upper_lip: float  # red-lip thickness
    lower_lip: float
    # appearance
    age: float  # 0..1, depth of static wrinkles (forehead lines, nasolabial folds) at rest
    light_angle: float  # direction of the key light, radians
    light_strength: float
    chin_dots: tuple[tuple[float, float], ...]  # chin-boss pits revealed by AU17, relative to the chin centre


def _mix(rng: np.random.Generator, table: np.ndarray, jitter: float) -> RGB:
    """A random point on a colour polyline with a small per-channel tint."""
    t = rng.uniform(0, len(table) - 1)
    i = min(int(t), len(table) - 2)
    colour = table[i] + (t - i) * (table[i + 1] - table[i]) + rng.normal(0, jitter, 3)
    return tuple(float(c) for c in np.clip(colour, 0, 255))  # type: ignore[return-value]


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw one subject's look; every subject drawn from a fresh ``rng`` looks clearly different."""
    u = rng.uniform
    skin = np.array(_mix(rng, _SKIN_TONES, 6.0))
    hair = np.array(_HAIR_COLOURS[rng.integers(len(_HAIR_COLOURS))]) * u(0.8, 1.2)
    brow = 0.55 * hair + 0.45 * skin * 0.35 if u() < 0.8 else skin * 0.3
    lip = skin * np.array([0.92, 0.62, 0.62]) + rng.normal(0, 6, 3) + np.array([14, 0, 4])
    hue = rng.uniform(0, 255, 3)
    bg_top = 0.6 * hue + 0.4 * u(60, 200)
    bg_bottom = bg_top * u(0.6, 1.0)
    n_dots = int(rng.integers(9, 15))
    dots = tuple((float(u(-1, 1)), float(u(-1, 1))) for _ in range(n_dots))
    return Identity(
        skin=_rgb(skin),
        hair=_rgb(np.clip(hair, 0, 255)),
        brow_colour=_rgb(np.clip(brow, 0, 255)),
        lip=_rgb(np.clip(lip, 0, 255)),
        iris=_mix(rng, _IRIS_COLOURS, 8.0),
        background=(_rgb(bg_top), _rgb(bg_bottom)),
        crown_y=u(0.01, 0.07),
        face_half_width=u(0.34, 0.41),
        jaw_half_width=u(0.25, 0.32),
        jaw_y=u(0.78, 0.84),
        chin_half_width=u(0.07, 0.12),
        chin_y=u(0.925, 0.965),
        hairline_y=u(0.12, 0.22),
        hair_long=u(0, 1),
        eye_dx=u(-0.008, 0.008),
        eye_dy=u(-0.012, 0.012),
        eye_spread=u(-0.012, 0.012),
        eye_half_width=u(0.048, 0.06),
        eye_upper=u(0.020, 0.028),
        eye_lower=u(0.011, 0.016),
        eye_tilt=u(-0.006, 0.008),
        iris_radius=u(0.018, 0.022),
        brow_gap=u(0.062, 0.082),
        brow_thickness=u(0.012, 0.026),
        brow_arch=u(0.004, 0.018),
        brow_length=u(0.12, 0.15),
        nose_half_width=u(0.036, 0.05),
        nose_dy=u(-0.01, 0.01),
        mouth_dy=u(-0.01, 0.01),
        mouth_half_width=u(0.092, 0.112),
        mouth_corner_dy=u(-0.004, 0.008),
        upper_lip=u(0.014, 0.026),
        lower_lip=u(0.018, 0.032),
        age=u(0, 1) ** 2,
        light_angle=u(0, 2 * np.pi),
        light_strength=u(0.05, 0.28),
        chin_dots=dots,
    )


def _rgb(x: np.ndarray) -> RGB:
    return tuple(float(c) for c in np.clip(x, 0, 255))  # type: ignore[return-value]


def eye_centres(identity: Identity) -> np.ndarray:
    """Centres of the image-left and image-right eyes, (2, 2) as (x, y), around the template's eye points."""
    centre = FIVE_POINTS[:2].mean(axis=0) + (identity.eye_dx, identity.eye_dy)
    half = (FIVE_POINTS[1, 0] - FIVE_POINTS[0, 0]) / 2 + identity.eye_spread
    return np.array([[centre[0] - half, centre[1]], [centre[0] + half, centre[1]]])
