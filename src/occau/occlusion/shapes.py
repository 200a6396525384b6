"""Realistic occluders drawn on the alignment template: a surgical mask, sunglasses and a hand.

Each painter returns a ``Layer``: its own colours and an anti-aliased coverage ``alpha``. The occluder's pixel mask is
its footprint (``alpha >= 0.5``), so token masks follow the drawn shape, not a bounding box. Shapes are placed from
``occau.faces.template`` in normalised coordinates; ``rng`` varies colours (and, for the hand, side and pose) only.
OpenCV draws with 4 fractional bits (``shift=4``) so small crops (S = 64) keep smooth, sub-pixel outlines. The drawing
helpers (``fixed``, ``polygon``, ``stroke``, ``bezier``, ...) and ``paint_hand`` are public so that the occluder kinds
of ``occluder_kinds`` draw the same way.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import cv2
import numpy as np

from occau.faces.template import EYE_LINE_Y, FIVE_POINTS, MOUTH_LINE_Y

SHIFT = 4  # fractional bits of every OpenCV coordinate below
AA = cv2.LINE_AA


@dataclass(frozen=True)
class Layer:
    color: np.ndarray  # (S, S, 3) float32 RGB in 0..255, meaningful where alpha > 0
    alpha: np.ndarray  # (S, S) float32 in [0, 1], anti-aliased coverage

    @property
    def footprint(self) -> np.ndarray:
        return self.alpha >= 0.5  # (S, S) bool

    def composite(self, image: np.ndarray) -> np.ndarray:
        """Alpha-blend the layer over a (S, S, 3) uint8 image -> new uint8 image."""
        a = self.alpha[..., None]
        return np.clip(np.rint(image * (1.0 - a) + self.color * a), 0, 255).astype(np.uint8)


def fixed(points: np.ndarray, size: int) -> np.ndarray:
    """Normalised (..., 2) points -> int32 pixel coordinates with SHIFT fractional bits."""
    return np.rint(np.asarray(points) * size * (1 << SHIFT)).astype(np.int32)


def px(length: float, size: int, minimum: int = 1) -> int:
    """A normalised length (thickness) in whole pixels; OpenCV thicknesses take no fractional bits."""
    return max(minimum, round(length * size))


def polygon(canvas: np.ndarray, points: np.ndarray, value, size: int) -> None:
    """A filled, anti-aliased polygon of normalised (n, 2) points."""
    cv2.fillPoly(canvas, [fixed(points, size)], value, AA, SHIFT)


def stroke(canvas: np.ndarray, points: np.ndarray, value, width: float, size: int) -> None:
    """A polyline of normalised width with round joins and caps."""
    pts = fixed(points, size)
    for p, q in itertools.pairwise(pts):
        cv2.line(canvas, tuple(map(int, p)), tuple(map(int, q)), value, px(width, size), AA, SHIFT)


def jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: float) -> np.ndarray:
    """A colour moved by up to ``amount`` per channel, so no two draws of a palette entry look identical."""
    return np.clip(np.asarray(rgb, dtype=np.float32) + rng.uniform(-amount, amount, 3), 0, 255)


def edge_shade(coverage: np.ndarray, size: int, depth: float, width: float) -> np.ndarray:
    """(S, S) factor in [1 - depth, 1]: darker near the footprint's edge, to give the shape some volume."""
    dist = cv2.distanceTransform((coverage > 0).astype(np.uint8), cv2.DIST_L2, 3)
    return (1.0 - depth * np.exp(-dist / max(width * size, 1.0))).astype(np.float32)


def bezier(p0, p1, p2, n: int = 24) -> np.ndarray:
    """(n, 2) points of the quadratic Bezier curve p0 -> p2 pulled towards p1: smooth outlines from 3 points."""
    t = np.linspace(0.0, 1.0, n)[:, None]
    return (1 - t) ** 2 * np.asarray(p0) + 2 * (1 - t) * t * np.asarray(p1) + t**2 * np.asarray(p2)  # (n, 2)


# ---------------------------------------------------------------------------------------------------------------
# surgical mask: from the nose bridge (below the eyes) to under the chin, with pleats and ear loops

MASK_COLORS = ((168, 204, 230), (234, 237, 239), (46, 47, 52), (236, 194, 204))  # blue, white, black, pink
MASK_COLOR_P = (0.55, 0.25, 0.15, 0.05)
MASK_TOP_Y = EYE_LINE_Y + 0.085  # over the nose bridge, clear of the lower eyelids
MASK_CORNER_Y = EYE_LINE_Y + 0.13
MASK_X = (0.21, 0.79)
MASK_BOTTOM_Y = 0.95  # wraps under the chin (~0.88 S on the template)


def mask_outline() -> np.ndarray:
    """(n, 2) normalised polygon: an arched top edge, straight sides and a half-ellipse round the chin."""
    left, right = MASK_X
    cy = MOUTH_LINE_Y - 0.02
    top = bezier((left, MASK_CORNER_Y), (0.5, 2 * MASK_TOP_Y - MASK_CORNER_Y), (right, MASK_CORNER_Y))
    t = np.linspace(0.0, np.pi, 40)
    bottom = np.stack([0.5 + (right - 0.5) * np.cos(t), cy + (MASK_BOTTOM_Y - cy) * np.sin(t)], axis=1)
    return np.concatenate([top, bottom], axis=0)


def surgical_mask(size: int, rng: np.random.Generator) -> Layer:
    left, right = MASK_X
    body = np.zeros((size, size), dtype=np.uint8)
    polygon(body, mask_outline(), 255, size)
    loops = np.zeros_like(body)
    for start, end in (
        ((left, MASK_CORNER_Y + 0.01), (0.07, EYE_LINE_Y + 0.06)),
        ((left + 0.015, 0.87), (0.07, EYE_LINE_Y + 0.08)),
    ):
        stroke(loops, np.array([start, end]), 255, 0.008, size)
        stroke(loops, np.array([(1 - start[0], start[1]), (1 - end[0], end[1])]), 255, 0.008, size)

    base = jitter(MASK_COLORS[rng.choice(len(MASK_COLORS), p=MASK_COLOR_P)], rng, 8)
    rows = np.linspace(1.0, 0.86, size, dtype=np.float32)[:, None]  # light from above
    shade = rows * edge_shade(body, size, depth=0.18, width=0.03)
    color = base * shade[..., None]  # (S, S, 3)
    pleats = np.zeros_like(body)
    for y in (MOUTH_LINE_Y - 0.13, MOUTH_LINE_Y - 0.07, MOUTH_LINE_Y - 0.01):
        stroke(pleats, bezier((left, y), (0.5, y + 0.025), (right, y)), 255, 0.007, size)
    color *= 1.0 - 0.22 * (pleats[..., None] / 255.0)
    on_loop = (loops > 0) & (body == 0)
    color[on_loop] = np.clip(base * 1.05, 0, 255)
    alpha = np.maximum(body, loops).astype(np.float32) / 255.0
    return Layer(color.astype(np.float32), alpha)


# ---------------------------------------------------------------------------------------------------------------
# sunglasses: two dark lenses centred on the template's eyes, a bridge and temple arms

LENS_HALF_W, LENS_HALF_H = 0.1, 0.07
LENS_SPREAD = 0.012  # frames are a little wider than the eyes: lens centres sit this far outside the pupils
LENS_COLORS = ((22, 24, 30), (48, 34, 22), (30, 40, 33))  # black, brown, green-grey
FRAME_COLORS = ((14, 14, 16), (74, 46, 26))  # black, tortoise


def lens_outline(center: np.ndarray) -> np.ndarray:
    """(n, 2) normalised superellipse lens, slightly narrower at the bottom (a wayfarer-ish shape)."""
    t = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    x = LENS_HALF_W * np.sign(c) * np.abs(c) ** (2 / 3.2)
    y = LENS_HALF_H * np.sign(s) * np.abs(s) ** (2 / 3.2)
    x *= 1.0 - 0.14 * np.clip(y / LENS_HALF_H, 0, 1)
    return np.stack([x, y], axis=1) + center


def sunglasses(size: int, rng: np.random.Generator) -> Layer:
    centers = FIVE_POINTS[:2] + np.array([[-LENS_SPREAD, 0.004], [LENS_SPREAD, 0.004]])  # (2, 2) image-left, -right
    bar_y = centers[:, 1].mean() - 0.025
    lenses = np.zeros((size, size), dtype=np.uint8)
    for c in centers:
        polygon(lenses, lens_outline(c), 255, size)
    frame = np.zeros_like(lenses)
    for c in centers:
        stroke(frame, np.vstack([lens_outline(c), lens_outline(c)[:1]]), 255, 0.014, size)
    inner_l, inner_r = centers[0, 0] + LENS_HALF_W * 0.9, centers[1, 0] - LENS_HALF_W * 0.9
    stroke(frame, bezier((inner_l, bar_y), (0.5, bar_y - 0.02), (inner_r, bar_y), 8), 255, 0.016, size)
    outer_l, outer_r = centers[0, 0] - LENS_HALF_W * 0.95, centers[1, 0] + LENS_HALF_W * 0.95
    stroke(frame, np.array([(outer_l, bar_y), (0.05, bar_y + 0.01)]), 255, 0.014, size)
    stroke(frame, np.array([(outer_r, bar_y), (0.95, bar_y + 0.01)]), 255, 0.014, size)

    lens_rgb = jitter(LENS_COLORS[rng.integers(len(LENS_COLORS))], rng, 6)
    frame_rgb = jitter(FRAME_COLORS[rng.integers(len(FRAME_COLORS))], rng, 6)
    rows = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    color = np.broadcast_to(lens_rgb + 70.0 * rows**2, (size, size, 3)).copy()  # lighter towards the bottom
    glint = np.zeros_like(lenses)
    for c in centers:  # a soft diagonal reflection on each lens
        stroke(glint, np.array([c + (-0.06, 0.05), c + (0.0, -0.06)]), 255, 0.025, size)
    glint = cv2.GaussianBlur(glint, (0, 0), max(0.5, 0.01 * size)).astype(np.float32)[..., None] / 255.0
    color += 90.0 * glint * rng.uniform(0.4, 1.0)
    on_frame = frame.astype(np.float32)[..., None] / 255.0
    color = color * (1.0 - on_frame) + frame_rgb * on_frame
    alpha = np.maximum(lenses, frame).astype(np.float32) / 255.0
    return Layer(np.clip(color, 0, 255).astype(np.float32), alpha)


# ---------------------------------------------------------------------------------------------------------------
# hand: a skin-toned palm with four fingers and a thumb, over one side of the upper or lower face

SKIN_TONES = ((247, 213, 181), (234, 189, 152), (214, 160, 118), (184, 128, 88), (141, 92, 60), (96, 62, 42))
FINGER_LENGTHS = (0.13, 0.16, 0.15, 0.12)  # index .. little, normalised
FINGER_OFFSETS = (-0.075, -0.026, 0.024, 0.072)  # across the palm, towards the thumb side (-) or away (+)
FINGER_SPLAY_DEG = (-7.0, -2.0, 3.0, 9.0)
FINGER_WIDTH = 0.05


def hand_pose(
    rng: np.random.Generator, *, upper: bool | None = None, image_left: bool | None = None
) -> tuple[bool, bool, np.ndarray, np.ndarray]:
    """(upper, image_left, palm centre (2,), unit finger direction (2,)) of a random hand.

    The hand enters from its side of the crop: the palm sits on that side's eye (upper) or mouth corner (lower) and
    the fingers point across the face and 10-40 degrees upwards. ``upper`` / ``image_left`` force that choice; the
    coin is still drawn, so a forced pose consumes the same random numbers as a free one.
    """
    drawn_upper, drawn_left = bool(rng.random() < 0.5), bool(rng.random() < 0.5)
    upper = drawn_upper if upper is None else upper
    image_left = drawn_left if image_left is None else image_left
    anchor = FIVE_POINTS[(0 if image_left else 1) if upper else (3 if image_left else 4)]
    inward = 1.0 if image_left else -1.0
    palm = anchor + np.array([-0.03 * inward, 0.02]) + rng.normal(0.0, 0.008, 2)
    lift = np.deg2rad(rng.uniform(10.0, 40.0))
    return upper, image_left, palm, np.array([inward * np.cos(lift), -np.sin(lift)])


def rotate(v: np.ndarray, degrees: float) -> np.ndarray:
    """A 2-vector turned by ``degrees`` (clockwise on screen, y pointing down)."""
    t = np.deg2rad(degrees)
    return np.array([[np.cos(t), -np.sin(t)], [np.sin(t), np.cos(t)]]) @ v


def hand(size: int, rng: np.random.Generator) -> Layer:
    _, image_left, palm, along = hand_pose(rng)
    tone = jitter(SKIN_TONES[rng.integers(len(SKIN_TONES))], rng, 10)
    return paint_hand(size, palm, along, image_left, tone)


def paint_hand(size: int, palm: np.ndarray, along: np.ndarray, image_left: bool, tone: np.ndarray) -> Layer:
    """The hand of ``hand`` at a given pose and skin tone (RGB), so other occluders can place hands of their own."""
    across = np.array([-along[1], along[0]])
    across = across if across[1] > 0 else -across  # perpendicular to the fingers, towards the chin: thumb side
    mirror = 1.0 if image_left else -1.0

    fingers = []  # (2, 2) segments, normalised
    for length, offset, splay in zip(FINGER_LENGTHS, FINGER_OFFSETS, FINGER_SPLAY_DEG):
        base = palm + 0.07 * along - offset * across
        fingers.append(np.array([base, base + length * rotate(along, mirror * splay)]))
    thumb_base = palm + 0.08 * across - 0.02 * along
    fingers.append(np.array([thumb_base, thumb_base + 0.1 * rotate(along, mirror * 50.0)]))
    wrist = np.array([palm - 0.05 * along, palm - 0.32 * along])

    body = np.zeros((size, size), dtype=np.uint8)
    palm_deg = float(np.rad2deg(np.arctan2(along[1], along[0])))
    axes = tuple(int(v) for v in fixed(np.array([0.115, 0.11]), size))
    cv2.ellipse(body, tuple(int(v) for v in fixed(palm, size)), axes, palm_deg, 0, 360, 255, -1, AA, SHIFT)
    stroke(body, wrist, 255, 0.17, size)
    for f in fingers:
        stroke(body, f, 255, FINGER_WIDTH, size)

    canvas = np.broadcast_to(np.rint(tone).astype(np.uint8), (size, size, 3)).copy()
    dark, light = tuple(int(v) for v in np.rint(tone * 0.72)), tuple(int(v) for v in np.rint(tone))
    if FINGER_WIDTH * size >= 8:  # outline each finger so they read as separate (no room for it on tiny crops)
        gap = 2.0 * max(1.0 / size, 0.006)
        for f in reversed(fingers):
            stroke(canvas, f, dark, FINGER_WIDTH, size)
            stroke(canvas, f, light, FINGER_WIDTH - gap, size)
    color = canvas.astype(np.float32) * edge_shade(body, size, depth=0.25, width=0.025)[..., None]
    return Layer(color, body.astype(np.float32) / 255.0)
