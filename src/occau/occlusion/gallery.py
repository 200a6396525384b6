"""A picture of the occlusion conditions: one row per face, one column per condition.

``python -m occau.occlusion.gallery out.png`` draws the gallery of docs/occlusion.md on a cartoon face drawn on the
template and on scikit-image's public-domain astronaut photo, aligned with its 5 points; ``--kinds`` draws the
occluder kinds of ``occluder_kinds`` (training / held-out / protocol) instead.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from occau.faces.align import align_face
from occau.faces.template import EYE_LINE_Y, FIVE_POINTS
from occau.occlusion.conditions import CONDITIONS, occlude
from occau.occlusion.occluder_kinds import OCCLUDER_KINDS, paste, split_of
from occau.occlusion.seeding import sample_rng
from occau.occlusion.tokens import pixels_from_token_mask

# yuface on skimage.data.astronaut() (512 x 512): eyes, nose tip, mouth corners as (x, y) pixels
ASTRONAUT_POINTS = np.array([[200, 101], [247, 102], [220, 124], [198, 142], [239, 143]], dtype=np.float64)


def cartoon_face(size: int = 224) -> np.ndarray:
    """(S, S, 3) uint8: a flat face whose eyes, nose and mouth sit on the alignment template."""
    img = np.full((size, size, 3), (96, 120, 150), dtype=np.uint8)

    def px(p) -> tuple[int, int]:
        return round(p[0] * size), round(p[1] * size)

    def ax(a: float, b: float) -> tuple[int, int]:
        return max(1, round(a * size)), max(1, round(b * size))

    cv2.ellipse(img, px((0.5, 0.44)), ax(0.32, 0.36), 0, 180, 360, (60, 40, 30), -1, cv2.LINE_AA)  # hair
    cv2.ellipse(img, px((0.5, 0.53)), ax(0.28, 0.36), 0, 0, 360, (226, 182, 150), -1, cv2.LINE_AA)  # face
    for eye in FIVE_POINTS[:2]:
        cv2.ellipse(img, px(eye), ax(0.055, 0.025), 0, 0, 360, (250, 250, 250), -1, cv2.LINE_AA)
        cv2.circle(img, px(eye), max(1, round(0.02 * size)), (70, 50, 40), -1, cv2.LINE_AA)
        brow = (eye[0], EYE_LINE_Y - 0.075)
        cv2.ellipse(img, px(brow), ax(0.06, 0.02), 0, 200, 340, (60, 40, 30), max(1, size // 60), cv2.LINE_AA)
    nose = FIVE_POINTS[2]
    cv2.line(img, px((0.5, EYE_LINE_Y + 0.03)), px(nose), (180, 130, 110), max(1, size // 80), cv2.LINE_AA)
    left, right = FIVE_POINTS[3], FIVE_POINTS[4]
    mid = (left + right) / 2
    cv2.ellipse(
        img, px(mid), ax((right[0] - left[0]) / 2, 0.03), 0, 0, 180, (170, 60, 60), max(1, size // 70), cv2.LINE_AA
    )
    return img


def astronaut_face(size: int = 224) -> np.ndarray:
    """(S, S, 3) uint8: skimage's astronaut (public domain) aligned to the template by a similarity transform."""
    try:
        from skimage.data import astronaut
    except ImportError as err:  # scikit-image is a dev dependency only
        raise ImportError("astronaut_face needs scikit-image (pip install occau[dev])") from err
    return align_face(astronaut(), ASTRONAUT_POINTS, size)[0]


def outline_tokens(image: np.ndarray, token_mask: np.ndarray, patch_size: int) -> np.ndarray:
    """A copy of the image with the border of the occluded token cells drawn in red."""
    cells = pixels_from_token_mask(token_mask, image.shape[0], patch_size).astype(np.uint8)
    edge = cells - cv2.erode(cells, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    out = image.copy()
    out[edge.astype(bool)] = (230, 30, 30)
    return out


def draw_gallery(
    images: Sequence[np.ndarray],
    conditions: Sequence[str] = CONDITIONS,
    out_png: str | Path = "occlusion_gallery.png",
    *,
    fill: str = "black",
    seed: int = 0,
    patch_size: int = 16,
    columns: int | None = None,
    show_tokens: bool = True,
    dpi: int = 100,
) -> Path:
    """Save a grid of occluded faces: each image gets ``ceil(len(conditions) / columns)`` rows of conditions.

    A condition may name its own fill as ``"patch50:noise"``; red outlines mark the occluded tokens.
    """
    import matplotlib

    matplotlib.use("Agg")
    columns = columns or len(conditions)
    fig, axes, blocks = _tile_grid(len(images), len(conditions), columns, (1.3, 1.42))
    for i, image in enumerate(images):
        for j, spec in enumerate(conditions):
            condition, _, own_fill = spec.partition(":")
            res = occlude(
                image, condition, sample_key=f"gallery/{i}", seed=seed, patch_size=patch_size, fill=own_fill or fill
            )
            shown = outline_tokens(res.image, res.token_mask, patch_size) if show_tokens else res.image
            ax = axes[i * blocks + j // columns, j % columns]
            ax.imshow(shown)
            ax.set_title(spec, fontsize=8, pad=2)
    return _save(fig, out_png, dpi)


def _save(fig, out_png: str | Path, dpi: int) -> Path:
    """Write a matplotlib figure as a palette PNG and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout(pad=0.2, h_pad=0.3, w_pad=0.2)
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.set_dpi(dpi)
    fig.canvas.draw()
    rgb = np.asarray(fig.canvas.buffer_rgba())[..., :3]  # (H, W, 3)
    plt.close(fig)
    # a 256-colour palette keeps the picture small enough to commit (about 3x smaller, no visible loss)
    Image.fromarray(rgb).quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    return out


SPLIT_COLORS = {"training": "#1f5fa8", "held-out": "#c0392b", "protocol": "#444444"}


def draw_occluder_kinds(
    images: Sequence[np.ndarray],
    out_png: str | Path = "occluder_kinds.png",
    kinds: Sequence[str] | None = None,
    *,
    seed: int = 0,
    columns: int = 7,
    dpi: int = 140,
) -> Path:
    """Save a grid of every occluder kind (``occluder_kinds.OCCLUDER_KINDS``) on each image, titled with its split.

    Each image gets ``ceil(len(kinds) / columns)`` rows; a kind's draw is seeded like a protocol condition, by
    (seed, kind, image index), so the picture is reproducible and each face shows a different draw. The default dpi
    shows 224-px crops at about their own size, where thin strokes (frames, strands) can be judged.
    """
    import matplotlib

    matplotlib.use("Agg")
    kinds = list(OCCLUDER_KINDS) if kinds is None else list(kinds)
    fig, axes, blocks = _tile_grid(len(images), len(kinds), columns, (1.6, 1.75))
    for i, image in enumerate(images):
        for j, kind in enumerate(kinds):
            layer = OCCLUDER_KINDS[kind](image.shape[0], sample_rng(seed, kind, f"gallery/{i}", "geometry"))
            ax = axes[i * blocks + j // columns, j % columns]
            ax.imshow(paste(image, layer)[0])
            split = split_of(kind)
            ax.set_title(f"{kind} ({split})", fontsize=7, pad=2, color=SPLIT_COLORS[split])
    return _save(fig, out_png, dpi)

def _tile_grid(num_images: int, per_image: int, columns: int, tile: tuple[float, float]):
    """A figure of ``per_image`` tiles per image, ``columns`` a row, each image's tiles in ``blocks`` rows of their own;
    every axis off. -> (figure, axes (rows, columns), blocks)."""
    import matplotlib.pyplot as plt

    blocks = -(-per_image // columns)
    rows = num_images * blocks
    fig, axes = plt.subplots(rows, columns, figsize=(tile[0] * columns, tile[1] * rows), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    return fig, axes, blocks



def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_png", type=Path)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--fill", default="black")
    parser.add_argument("--patch-size", type=int, default=16)
    parser.add_argument("--conditions", nargs="+", default=list(CONDITIONS), help="names, or name:fill")
    parser.add_argument("--columns", type=int, default=None, help="default: 8 conditions, 7 kinds")
    parser.add_argument("--kinds", action="store_true", help="draw the occluder kinds of occluder_kinds.py instead")
    args = parser.parse_args(argv)
    faces = [cartoon_face(args.size), astronaut_face(args.size)]
    if args.kinds:
        out = draw_occluder_kinds(faces, args.out_png, columns=args.columns or 7)
    else:
        out = draw_gallery(
            faces, args.conditions, args.out_png, fill=args.fill, patch_size=args.patch_size, columns=args.columns or 8
        )
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

