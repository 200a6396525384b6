"""Drawing a SynthFACS face: identity + 17 AU intensities + frame nuisance -> an aligned uint8 RGB crop.

The face is drawn with anti-aliased OpenCV primitives on a supersampled canvas in normalised crop coordinates
(x right, y down, both in [0, 1], the template of ``occau.faces.template``), then reduced to the requested side.
Crisp features (brows, lids, lips, wrinkles) go on the colour canvas; soft relief (eye sockets, cheeks, folds, chin
boss) goes on a blurred multiplicative shade layer together with the identity's key light. Each AU moves or
darkens only features inside its box in ``occau.aus.AU_REGIONS``, so covering that box removes its direct evidence;
``tests/test_synthfacs.py`` checks this pixel by pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from occau.aus import AU_NAMES
from occau.data.synthfacs.identity import Identity, eye_centres
from occau.faces.template import FIVE_POINTS

GENERATED_AUS: tuple[int, ...] = tuple(sorted(AU_NAMES))  # the 17 AUs every SynthFACS frame carries
AU_INDEX: dict[int, int] = {au: i for i, au in enumerate(GENERATED_AUS)}

_SHIFT = 4  # sub-pixel bits of OpenCV drawing coordinates
_ONE = 1 << _SHIFT
_SCLERA = (236.0, 232.0, 226.0)
_TEETH = (238.0, 234.0, 220.0)
_MOUTH = (72.0, 26.0, 30.0)
_LASH = (28.0, 22.0, 22.0)
_NOSE_TIP_Y = float(FIVE_POINTS[2, 1])
_MOUTH_Y = float(FIVE_POINTS[3:, 1].mean())
_U13 = np.linspace(-1.0, 1.0, 13)  # along an eye, inner corner -> outer corner
_U15 = np.linspace(-1.0, 1.0, 15)  # along the mouth, left corner -> right corner
_T9 = np.linspace(0.0, 1.0, 9)  # along a brow, inner end -> outer end


@dataclass(frozen=True)
class FrameNuisance:
    """What changes from frame to frame besides the AUs: aligner jitter, gaze, blinks and sensor noise."""

    dx: float = 0.0  # shift, units of S
    dy: float = 0.0
    angle: float = 0.0  # in-plane rotation, degrees
    scale: float = 1.0
    gaze_x: float = 0.0  # -1..1
    gaze_y: float = 0.0
    blink: float = 0.0  # 0 open .. 1 closed (not an AU label: AU43/45 are not coded)
    noise_seed: int = 0
    noise_sd: float = 2.0  # grey levels


def magnitude(intensity: np.ndarray | float) -> np.ndarray:
    """FACS intensity 0..5 -> drawing magnitude 0..1; concave so that A is subtle but visible and E is full."""
    return np.clip(np.asarray(intensity, dtype=np.float64) / 5.0, 0.0, 1.0) ** 0.8


def canvas_side(size: int) -> int:
    """Side of the supersampled drawing canvas: an integer multiple (>= 2) of the crop, so the reduction is a fast
    box filter, and at least 192 px (3x at 64 px) so that 1-px wrinkles land as soft sub-pixel lines."""
    return size * max(2, -(-192 // size))


class _Canvas:
    """A colour canvas and a soft shade layer, both addressed in normalised coordinates."""

    def __init__(self, side: int, background: tuple[tuple[float, ...], tuple[float, ...]]):
        self.side = side
        top, bottom = np.array(background[0], np.float32), np.array(background[1], np.float32)
        ramp = np.linspace(0.0, 1.0, side, dtype=np.float32)[:, None]
        row = (top + (bottom - top) * ramp).astype(np.uint8)  # (C, 3)
        self.img = cv2.resize(row[:, None, :], (side, side), interpolation=cv2.INTER_NEAREST)  # (C, C, 3)
        # the shade layer is blurred anyway, so it is drawn at a quarter of the canvas resolution
        self.shade_side = max(32, side // 4)
        self.shade = np.zeros((self.shade_side, self.shade_side), np.float32)

    def _px(self, xy: np.ndarray) -> np.ndarray:
        return np.rint(np.asarray(xy, np.float64) * (self.side * _ONE)).astype(np.int32)

    def _w(self, width: float) -> int:
        return max(1, round(width * self.side))

    def fill(self, xy: np.ndarray, colour) -> None:
        cv2.fillPoly(self.img, [self._px(xy)], colour, cv2.LINE_AA, _SHIFT)

    def stroke(self, xy: np.ndarray, colour, width: float) -> None:
        cv2.polylines(self.img, [self._px(xy)], False, colour, self._w(width), cv2.LINE_AA, _SHIFT)

    def ellipse(self, centre, axes, colour, angle: float = 0.0, arc=(0, 360), width: float | None = None) -> None:
        c, a = self._px(centre), self._px(axes)
        thickness = -1 if width is None else self._w(width)
        cv2.ellipse(self.img, (int(c[0]), int(c[1])), (int(a[0]), int(a[1])), angle, arc[0], arc[1], colour,
                    thickness, cv2.LINE_AA, _SHIFT)

    def _soft_px(self, xy) -> np.ndarray:
        return np.rint(np.asarray(xy, np.float64) * (self.shade_side * _ONE)).astype(np.int32)

    def soft_ellipse(self, centre, axes, value: float, angle: float = 0.0) -> None:
        c, a = self._soft_px(centre), self._soft_px(axes)
        cv2.ellipse(self.shade, (int(c[0]), int(c[1])), (int(a[0]), int(a[1])), angle, 0, 360, float(value), -1,
                    cv2.LINE_8, _SHIFT)

    def soft_stroke(self, xy: np.ndarray, value: float, width: float) -> None:
        w = max(1, round(width * self.shade_side))
        cv2.polylines(self.shade, [self._soft_px(xy)], False, float(value), w, cv2.LINE_8, _SHIFT)


def _tone(colour, factor: float) -> tuple[float, float, float]:
    """A colour darkened (factor < 1) or lightened (> 1)."""
    return tuple(float(min(255.0, c * factor)) for c in colour)  # type: ignore[return-value]


_BERNSTEIN = {n: np.stack([(1 - t) ** 2, 2 * (1 - t) * t, t**2], 1) for n in range(2, 16)
              for t in [np.linspace(0.0, 1.0, n)]}  # (n, 3) weights of quadratic Bezier curves


def _curve(p0, p1, p2, n: int = 10) -> np.ndarray:
    """Quadratic Bezier through control point p1, (n, 2)."""
    return _BERNSTEIN[n] @ np.array([p0, p1, p2], np.float64)


def _ribbon(centre_line: np.ndarray, thickness: np.ndarray) -> np.ndarray:
    """Polygon of a stroke of varying thickness around a centre line (n, 2)."""
    tangent = np.gradient(centre_line, axis=0)
    normal = np.stack([-tangent[:, 1], tangent[:, 0]], axis=1)
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    offset = normal * (thickness[:, None] / 2)
    return np.concatenate([centre_line + offset, (centre_line - offset)[::-1]])


# ---------------------------------------------------------------- head, hair, background


def _head_outline(idn: Identity, jaw_drop: float) -> np.ndarray:
    """Closed outline of the face (n, 2); AU26 lowers the chin and the lower jaw line, not the jaw angles."""
    fw, cheek_y = idn.face_half_width, 0.47
    ys = np.linspace(idn.crown_y, cheek_y, 12)
    top = np.stack([0.5 + fw * np.sqrt(np.clip(1 - ((cheek_y - ys) / (cheek_y - idn.crown_y)) ** 2, 0, 1)), ys], 1)
    ys = np.linspace(cheek_y, idn.jaw_y, 8)[1:]
    t = (ys - cheek_y) / (idn.jaw_y - cheek_y)
    mid = np.stack([0.5 + fw + (idn.jaw_half_width - fw) * (3 * t**2 - 2 * t**3), ys], 1)
    low = _curve((0.5 + idn.jaw_half_width, idn.jaw_y), (0.5 + idn.chin_half_width + 0.07, idn.chin_y),
                 (0.5, idn.chin_y), 12)[1:]
    k = np.clip((low[:, 1] - idn.jaw_y) / (idn.chin_y - idn.jaw_y), 0, 1) ** 1.5
    low[:, 1] += jaw_drop * k
    right = np.concatenate([top, mid, low])
    left = right[::-1].copy()
    left[:, 0] = 1.0 - left[:, 0]
    return np.concatenate([right, left[1:]])


def _draw_head(cv: _Canvas, idn: Identity, jaw_drop: float) -> None:
    skin, fw = idn.skin, idn.face_half_width
    # hair behind the head, long hair falling down the sides
    top = 0.47 - idn.crown_y
    hair_bottom = 0.5 + 0.45 * idn.hair_long
    cv.ellipse((0.5, 0.47), (fw + 0.045, top + 0.04), idn.hair)
    if idn.hair_long > 0.1:
        cv.fill(np.array([[0.5 - fw - 0.045, 0.47], [0.5 + fw + 0.045, 0.47], [0.5 + fw + 0.03, hair_bottom],
                          [0.5 - fw - 0.03, hair_bottom]]), idn.hair)
    # neck, then ears, then the face over them
    cv.fill(np.array([[0.5 - 0.15, 0.7], [0.5 + 0.15, 0.7], [0.5 + 0.19, 1.02], [0.5 - 0.19, 1.02]]),
            _tone(skin, 0.86))
    for side in (-1, 1):
        cv.ellipse((0.5 + side * (fw - 0.005), 0.53), (0.03, 0.06), _tone(skin, 0.93))
    cv.fill(_head_outline(idn, jaw_drop), skin)
    # hair over the forehead down to the hairline, lower at the temples, bounded by the skull
    xs = np.linspace(-fw - 0.02, fw + 0.02, 15)
    line = np.stack([0.5 + xs, idn.hairline_y + 0.16 * (np.abs(xs) / fw) ** 3], 1)
    a, b = fw + 0.025, top + 0.025
    theta0 = np.arcsin(np.clip((0.47 - line[-1, 1]) / b, 0.0, 1.0))
    theta = np.linspace(theta0, np.pi - theta0, 15)
    cap = np.stack([0.5 + a * np.cos(theta), 0.47 - b * np.sin(theta)], 1)
    cv.fill(np.concatenate([line, cap]), idn.hair)
    # soft relief: cheekbone shadow under the light, neck shadow under the chin (moves with the jaw)
    cv.soft_ellipse((0.5, idn.chin_y + jaw_drop + 0.015), (0.15, 0.03), -0.22)


# ---------------------------------------------------------------- brows and forehead (AU1, AU2, AU4)


def _brow_line(idn: Identity, eye: np.ndarray, side: int, m1: float, m2: float, m4: float) -> np.ndarray:
    """Centre line of one brow from its inner to its outer end, (9, 2); side -1 = image-left."""
    t = _T9
    inner_x = eye[0] - side * (0.058 + 0.014 * m4)
    x = inner_x + side * idn.brow_length * t
    y = (eye[1] - idn.brow_gap - idn.brow_arch * np.sin(np.pi * t**0.8) + 0.25 * idn.brow_arch * t
         - m1 * 0.042 * np.clip(1 - t / 0.6, 0, 1) ** 1.5
         - m2 * (0.032 * t**1.2 + 0.010 * np.sin(np.pi * t))
         + m4 * (0.02 * (1 - t) + 0.01))
    return np.stack([x, y], 1)


def _draw_brows(cv: _Canvas, idn: Identity, eyes: np.ndarray, m: dict[int, float]) -> None:
    m1, m2, m4 = m[1], m[2], m[4]
    skin = idn.skin
    brow_y = float(eyes[:, 1].mean() - idn.brow_gap)
    # forehead lines: faint with age, central with AU1, lateral with AU2
    for i in range(3):
        y = brow_y - 0.075 - 0.032 * i
        if y < idn.hairline_y + 0.03:
            break
        if idn.age > 0.15:
            line = _curve((0.30, y + 0.008), (0.5, y - 0.012), (0.70, y + 0.008), 9)
            cv.stroke(line, _tone(skin, 1 - 0.12 * idn.age), 0.006)
        if m1 > 0.01:
            yc = y - 0.012 * m1
            cv.stroke(_curve((0.40, yc + 0.006), (0.5, yc - 0.016 * m1), (0.60, yc + 0.006), 7),
                      _tone(skin, 1 - 0.42 * m1), 0.007)
        if m2 > 0.01:
            yl = y - 0.010 * m2
            for s in (-1, 1):
                line = _curve((0.5 + s * 0.25, yl + 0.012), (0.5 + s * 0.17, yl - 0.012 * m2), (0.5 + s * 0.09, yl), 7)
                cv.stroke(line, _tone(skin, 1 - 0.42 * m2), 0.007)
    # glabella: vertical furrows and the procerus line between the brows (AU4)
    if m4 > 0.01:
        for s in (-1, 1):
            cv.stroke(np.array([[0.5 + s * 0.016, brow_y - 0.012], [0.5 + s * 0.010, brow_y + 0.032]]),
                      _tone(skin, 1 - 0.5 * m4), 0.007)
        cv.stroke(np.array([[0.48, brow_y + 0.045], [0.52, brow_y + 0.045]]), _tone(skin, 1 - 0.3 * m4), 0.006)
    for side, eye in zip((-1, 1), eyes):
        line = _brow_line(idn, eye, side, m1, m2, m4)
        t = _T9
        # soft shadow of the brow ridge over the eye socket, deeper when the brows are lowered
        cv.soft_stroke(line + (0.0, 0.022), -0.05 - 0.07 * m4, 0.03)
        cv.fill(_ribbon(line, idn.brow_thickness * (1.15 - 0.6 * t)), idn.brow_colour)


# ---------------------------------------------------------------- eyes and cheeks (AU5, AU6, AU7)


def _draw_eye(cv: _Canvas, idn: Identity, eye: np.ndarray, side: int, m: dict[int, float], nz: FrameNuisance) -> None:
    m5, m6, m7 = m[5], m[6], m[7]
    skin = idn.skin
    cx, cy = eye
    a = idn.eye_half_width
    hu = idn.eye_upper * (1 + 0.7 * m5) * (1 - 0.3 * m7) * (1 - 0.2 * m6)
    hl = idn.eye_lower * (1 - 0.6 * m7) * (1 - 0.5 * m6)
    u = _U13
    x = cx + side * u * a
    base = cy - idn.eye_tilt * u
    lower = base + hl * (1 - u**2) ** (0.8 - 0.5 * m7) - (0.008 * m7 + 0.004 * m6) * (1 - u**2) ** 0.5
    upper = base - hu * (1 - u**2) ** 0.6
    upper = upper + nz.blink * (lower - upper)
    up, lo = np.stack([x, upper], 1), np.stack([x, lower], 1)
    # sclera, iris, pupil, catch-light; the lids are then drawn over what they hide
    cv.fill(np.concatenate([up, lo[::-1]]), _SCLERA)
    r = idn.iris_radius
    ic = (cx + nz.gaze_x * a * 0.3, cy + nz.gaze_y * 0.006)
    cv.ellipse(ic, (r, r), idn.iris)
    cv.ellipse(ic, (0.45 * r, 0.45 * r), (12.0, 10.0, 10.0))
    cv.ellipse((ic[0] + 0.3 * r, ic[1] - 0.3 * r), (0.2 * r, 0.2 * r), (245.0, 245.0, 245.0))
    top = cy - idn.eye_upper * 1.7 - 0.03
    cv.fill(np.concatenate([up, np.array([[x[-1], top], [x[0], top]])]), skin)
    bottom = cy + idn.eye_lower + r + 0.012
    cv.fill(np.concatenate([lo, np.array([[x[-1], bottom], [x[0], bottom]])]), skin)
    # lid crease (hidden as AU5 retracts the lid), lash line, lower lid
    crease = np.stack([x[2:-2], (upper - 0.011 - 0.004 * (1 - u**2))[2:-2]], 1)
    cv.stroke(crease, _tone(skin, 1 - 0.3 * (1 - 0.85 * m5)), 0.006)
    cv.stroke(up, _LASH, 0.010)
    cv.stroke(lo, _tone(skin, 0.62 - 0.15 * m7), 0.005)
    # AU7: tensed lower lid bulges; AU6: crow's feet and infraorbital furrow
    if m7 > 0.01:
        bulge = np.stack([x[3:-2], lower[3:-2] + 0.008], 1)
        cv.stroke(bulge, _tone(skin, 1 - 0.5 * m7), 0.007)
    corner = np.array([cx + side * a * 1.1, cy - idn.eye_tilt])
    feet = max(0.12 * idn.age, 0.55 * m6)
    if feet > 0.01:
        length = 0.016 + 0.02 * m6
        for angle in (-0.5, 0.0, 0.5):
            d = np.array([side * np.cos(angle), np.sin(angle)])
            cv.stroke(np.stack([corner + 0.006 * d, corner + length * d]), _tone(skin, 1 - feet), 0.006)
    if m6 > 0.01:
        fy = cy + idn.eye_lower + 0.024 - 0.01 * m6
        cv.stroke(_curve((cx - side * 0.6 * a, fy), (cx, fy + 0.008), (cx + side * 1.05 * a, fy - 0.006), 8),
                  _tone(skin, 1 - 0.38 * m6), 0.006)
    # socket shadow under the eye and the cheek apple, lifted by AU6
    cv.soft_ellipse((cx, cy + 0.045 - 0.01 * m6), (0.05, 0.012), -0.04 - 0.05 * m6)
    cv.soft_ellipse((0.5 + side * 0.195, 0.60 - 0.035 * m6), (0.055, 0.035), 0.05 + 0.07 * m6)


# ---------------------------------------------------------------- nose (AU9, AU10 at the alae)


def _draw_nose(cv: _Canvas, idn: Identity, eyes: np.ndarray, m: dict[int, float]) -> None:
    m9, m10 = m[9], m[10]
    skin = idn.skin
    tip_y = _NOSE_TIP_Y + idn.nose_dy
    eye_y = float(eyes[:, 1].mean())
    nw = idn.nose_half_width * (1 + 0.15 * m9 + 0.06 * m10)
    lift = 0.009 * m9 + 0.004 * m10
    for s in (-1, 1):
        bridge_end = 0.5 + s * 0.7 * idn.nose_half_width * (1 + 0.15 * m9)
        cv.soft_stroke(np.array([[0.5 + s * 0.026, eye_y + 0.01], [bridge_end, tip_y - 0.012]]),
                       -0.07 - 0.08 * m9, 0.012)
        cv.ellipse((0.5 + s * 0.5 * nw, tip_y + 0.012 - lift), (0.32 * nw, 0.0065), _tone(skin, 0.35), angle=s * 18)
        cv.ellipse((0.5 + s * 0.78 * nw, tip_y + 0.003 - lift), (0.3 * nw, 0.017), _tone(skin, 0.72),
                   arc=(-100, 110) if s > 0 else (70, 280), width=0.006)
    cv.soft_ellipse((0.5, tip_y - 0.008), (0.022, 0.016), 0.06)
    if m9 > 0.01:
        wrinkle = _tone(skin, 1 - 0.5 * m9)
        for i in range(3):
            y = eye_y + 0.004 + 0.014 * i
            cv.stroke(_curve((0.475, y + 0.003), (0.5, y - 0.004), (0.525, y + 0.003), 5), wrinkle, 0.006)
        for s in (-1, 1):
            cv.stroke(np.array([[0.5 + s * 0.024, eye_y + 0.045], [0.5 + s * 0.05, eye_y + 0.07]]), wrinkle, 0.006)


# ---------------------------------------------------------------- mouth, cheeks and chin (AU10 .. AU26)


@dataclass(frozen=True)
class _Mouth:
    upper_outer: np.ndarray  # (n, 2), left corner -> right corner
    upper_inner: np.ndarray
    lower_inner: np.ndarray
    lower_outer: np.ndarray
    u: np.ndarray  # (n,) -1 .. 1 along the mouth
    corners: np.ndarray  # (2, 2) image-left, image-right


def _mouth_shape(idn: Identity, m: dict[int, float], jaw: float) -> _Mouth:
    my = _MOUTH_Y + idn.mouth_dy
    hw = idn.mouth_half_width
    # corner displacement: (outward, up) in units of S
    out = 0.018 * m[12] - 0.012 * m[14] + 0.003 * m[15] + 0.03 * m[20] - 0.016 * m[23] - 0.004 * m[24]
    rise = 0.03 * m[12] + 0.004 * m[14] - 0.026 * m[15] - 0.006 * m[20]
    out -= 0.2 * jaw
    corner_y = my + idn.mouth_corner_dy - rise
    u = _U15
    x = 0.5 + u * (hw + out)
    line = corner_y + (my - corner_y) * (1 - u**2)  # lip contact line, a U when the corners rise
    thin = (1 - 0.45 * m[23]) * (1 - 0.72 * m[24]) * (1 - 0.25 * m[20])
    ut = idn.upper_lip * thin * (1 - 0.2 * m[12])
    lt = idn.lower_lip * thin * (1 + 0.2 * m[17])
    bell = np.sqrt(1 - u**2)
    press = (1 - m[24]) * (1 - 0.5 * m[23])
    part = 0.032 * m[25] * press
    raise10 = 0.02 * m[10] * (1 - u**2) ** 0.7
    s = (1 - u**2) ** 0.7
    upper_inner = line - raise10 - 0.45 * part * s
    lower_inner = line + (0.55 * part + 0.9 * jaw) * s - 0.014 * m[17] * s
    cupid = 1 - 0.28 * np.exp(-((u / 0.16) ** 2))
    upper_outer = upper_inner - ut * bell * cupid - 0.004 * bell
    lower_outer = lower_inner + lt * bell**0.8
    xy = lambda y: np.stack([x, y], 1)
    corners = np.array([[x[0], line[0]], [x[-1], line[-1]]])
    return _Mouth(xy(upper_outer), xy(upper_inner), xy(lower_inner), xy(lower_outer), u, corners)


def _draw_mouth(cv: _Canvas, idn: Identity, m: dict[int, float], jaw: float) -> _Mouth:
    skin, lip = idn.skin, idn.lip
    mo = _mouth_shape(idn, m, jaw)
    u = mo.u
    gap = mo.lower_inner[:, 1] - mo.upper_inner[:, 1]
    if gap.max() > 0.002:
        cv.fill(np.concatenate([mo.upper_inner, mo.lower_inner[::-1]]), _MOUTH)
        seen = np.abs(u) < 0.8
        top = mo.upper_inner[seen]
        teeth_bottom = np.minimum(top[:, 1] + 0.022, mo.lower_inner[seen, 1])
        cv.fill(np.concatenate([top, np.stack([top[:, 0], teeth_bottom], 1)[::-1]]), _TEETH)
        seen = np.abs(u) < 0.6
        bottom = mo.lower_inner[seen]
        teeth_top = np.maximum(bottom[:, 1] - 0.012, mo.upper_inner[seen, 1] + 0.022)
        if (bottom[:, 1] - teeth_top).max() > 0.002:
            cv.fill(np.concatenate([bottom, np.stack([bottom[:, 0], teeth_top], 1)[::-1]]), _TEETH)
    cv.fill(np.concatenate([mo.upper_outer, mo.upper_inner[::-1]]), _tone(lip, 0.92))
    cv.fill(np.concatenate([mo.lower_inner, mo.lower_outer[::-1]]), lip)
    cv.stroke(np.concatenate([mo.upper_inner[:1], 0.5 * (mo.upper_inner + mo.lower_inner)[1:-1], mo.lower_inner[-1:]]),
              _tone(lip, 0.45 - 0.15 * m[24]), 0.006)
    if m[23] > 0.01:  # tightened, slightly rolled lips: fine vertical lines on the red
        for ux in (-0.5, -0.25, 0.0, 0.25, 0.5):
            i = int(np.argmin(np.abs(u - ux)))
            cv.stroke(np.array([mo.upper_outer[i] + (0, 0.002), mo.upper_inner[i] - (0, 0.002)]),
                      _tone(lip, 1 - 0.3 * m[23]), 0.004)
            cv.stroke(np.array([mo.lower_inner[i] + (0, 0.002), mo.lower_outer[i] - (0, 0.002)]),
                      _tone(lip, 1 - 0.3 * m[23]), 0.004)
    # soft relief around the lips: philtrum, lower-lip shadow, AU24 bulges
    cv.soft_ellipse((0.5, mo.upper_outer[7, 1] - 0.02), (0.008, 0.014), -0.05)
    cv.soft_ellipse((0.5, mo.lower_outer[7, 1] + 0.008), (0.06, 0.008), -0.08 - 0.06 * m[17])
    if m[24] > 0.01:
        cv.soft_ellipse((0.5, mo.upper_outer[7, 1] - 0.01), (0.07, 0.01), 0.09 * m[24])
        cv.soft_ellipse((0.5, mo.lower_outer[7, 1] + 0.012), (0.07, 0.01), 0.09 * m[24])
    for side, corner in zip((-1, 1), mo.corners):
        out = np.array([side, 0.0])
        if m[14] > 0.01:  # dimple: a short crescent beside the tightened corner
            cv.ellipse(corner + out * 0.014, (0.008, 0.018), _tone(skin, 1 - 0.6 * m[14]), arc=(-80, 80) if side > 0
                       else (100, 260), width=0.009)
            cv.soft_ellipse(corner + out * 0.03, (0.012, 0.016), 0.08 * m[14])
        if m[15] > 0.01:  # depressed corners: lines running down from the corners
            line = _curve(corner + (side * 0.004, 0.006), corner + (side * 0.012, 0.03),
                          corner + (side * 0.008, 0.055), 6)
            cv.stroke(line, _tone(skin, 1 - 0.45 * m[15]), 0.007)
        if m[20] > 0.01:  # stretched: horizontal skin folds lateral to the corners
            for dy in (-0.008, 0.008):
                cv.stroke(np.array([corner + (side * 0.008, dy), corner + (side * 0.034, dy * 1.8)]),
                          _tone(skin, 1 - 0.4 * m[20]), 0.006)
        if m[12] > 0.01:  # cheeks bunched beside a smile
            cv.soft_ellipse(corner + (side * 0.045, -0.02), (0.035, 0.025), 0.06 * m[12])
    return mo


def _draw_nasolabial(cv: _Canvas, idn: Identity, m: dict[int, float]) -> None:
    """The nasolabial folds: deepened by AU10 and AU12, pulled up and out by the smile."""
    skin = idn.skin
    tip_y = _NOSE_TIP_Y + idn.nose_dy
    my = _MOUTH_Y + idn.mouth_dy
    hw = idn.mouth_half_width
    depth = 0.08 + 0.22 * idn.age + 0.45 * m[10] + 0.5 * m[12]
    for s in (-1, 1):
        start = (0.5 + s * (idn.nose_half_width + 0.012), tip_y + 0.012)
        end = (0.5 + s * (hw + 0.03 + 0.02 * m[12]), my + 0.035 - 0.02 * m[12])
        ctrl = (0.5 + s * (hw + 0.035 + 0.02 * m[12]), my - 0.035 - 0.012 * m[10])
        fold = _curve(start, ctrl, end, 10)
        cv.stroke(fold, _tone(skin, 1 - 0.5 * depth), 0.007)
        cv.soft_stroke(fold + (s * 0.008, 0.0), 0.04 * depth, 0.014)


def _draw_chin(cv: _Canvas, idn: Identity, m: dict[int, float], jaw: float) -> None:
    """Mentolabial furrow and chin boss; AU17 raises and wrinkles the boss, AU26 carries all of it down."""
    skin = idn.skin
    m17 = m[17]
    lip_y = _MOUTH_Y + idn.mouth_dy + idn.lower_lip + jaw  # anchored to the jaw, not to the lips' own actions
    fy = lip_y + 0.022 - 0.008 * m17
    cv.stroke(_curve((0.45, fy + 0.005), (0.5, fy - 0.005 - 0.006 * m17), (0.55, fy + 0.005), 7),
              _tone(skin, 0.9 - 0.45 * m17), 0.006 + 0.004 * m17)
    boss = np.array([0.5, 0.5 * (fy + 0.008 * m17 + idn.chin_y + jaw) + 0.008 - 0.01 * m17])
    cv.soft_ellipse(boss, (0.055, 0.03), 0.04 + 0.1 * m17)
    if m17 > 0.01:
        dots = np.array(idn.chin_dots) * (0.045, 0.022) + boss
        colour = _tone(skin, 1 - 0.5 * m17)
        for d in dots:
            cv.ellipse(d, (0.005, 0.004), colour)


# ---------------------------------------------------------------- the whole face


def render_face(identity: Identity, intensity: np.ndarray, size: int,
                nuisance: FrameNuisance = FrameNuisance()) -> np.ndarray:
    """Draw one aligned face crop.

    ``intensity`` holds the 17 AU intensities (0..5, continuous) in ``GENERATED_AUS`` order; returns (size, size, 3)
    uint8 RGB. The same inputs always give the same pixels.
    """
    if not 32 <= size <= 512:
        raise ValueError(f"SynthFACS image side must be in 32..512, got {size}")
    intensity = np.asarray(intensity, dtype=np.float64)
    if intensity.shape != (len(GENERATED_AUS),):
        raise ValueError(f"expected {len(GENERATED_AUS)} AU intensities in GENERATED_AUS order, got {intensity.shape}")
    mags = magnitude(intensity)
    m = {au: float(mags[i]) for i, au in enumerate(GENERATED_AUS)}
    jaw = 0.055 * m[26]
    idn = identity
    cv = _Canvas(canvas_side(size), idn.background)
    _draw_head(cv, idn, jaw)
    eyes = eye_centres(idn)
    for side, eye in zip((-1, 1), eyes):
        _draw_eye(cv, idn, eye, side, m, nuisance)
    _draw_brows(cv, idn, eyes, m)
    _draw_nose(cv, idn, eyes, m)
    _draw_nasolabial(cv, idn, m)
    _draw_mouth(cv, idn, m, jaw)
    _draw_chin(cv, idn, m, jaw)
    return _finish(cv, idn, size, nuisance)


def _finish(cv: _Canvas, idn: Identity, size: int, nz: FrameNuisance) -> np.ndarray:
    """Soft shade and key light, reduction to ``size``, aligner jitter and sensor noise."""
    shade = cv2.GaussianBlur(cv.shade, (0, 0), 0.008 * cv.shade_side)
    shade = cv2.resize(shade, (size, size), interpolation=cv2.INTER_LINEAR)  # (S, S)
    ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
    light = np.float32(idn.light_strength) * ramp
    shade += np.float32(np.cos(idn.light_angle)) * light[None, :]
    shade += np.float32(np.sin(idn.light_angle)) * light[:, None]
    shade += np.float32(1.0)
    img = cv2.resize(cv.img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    img *= shade[..., None]
    if nz.dx or nz.dy or nz.angle or nz.scale != 1.0:
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), nz.angle, nz.scale)
        matrix[:, 2] += (nz.dx * size, nz.dy * size)
        img = cv2.warpAffine(img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if nz.noise_sd > 0:
        noise = np.random.default_rng(nz.noise_seed).standard_normal((size, size), dtype=np.float32)
        noise *= np.float32(nz.noise_sd)
        img += noise[..., None]  # luminance noise, like a sensor's
    img += np.float32(0.5)
    return np.clip(img, 0, 255, out=img).astype(np.uint8)
