"""Occlusion conditions of PROTOCOL §2: coverage and region measured on the masks, token rule, determinism."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from occau.faces.template import EYE_LINE_Y, FIVE_POINTS, MOUTH_LINE_Y, NOSE_TIP_Y
from occau.occlusion import CONDITIONS, FILLS, OCCLUDERS, RandomOcclusion, occlude, sample_rng, token_mask_from_pixels
from occau.occlusion.fills import IMAGENET_MEAN_RGB
from occau.occlusion.shapes import hand_pose
from occau.occlusion.tokens import pixels_from_token_mask

SIZES = (64, 100, 160, 224)
PATCHES = (8, 16)
KEYS = [f"subject/{i:03d}" for i in range(12)]


def face(size: int, seed: int = 0) -> np.ndarray:
    """A smooth random image (no zeros), so painted black pixels are distinguishable from the input."""
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 230, size=(8, 8, 3)).astype(np.uint8)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def covered(mask: np.ndarray, point) -> bool:
    s = mask.shape[0]
    return bool(mask[min(int(point[1] * s), s - 1), min(int(point[0] * s), s - 1)])


# --- token-mask rule -------------------------------------------------------------------------------------------


def test_token_rule_half_of_a_cell_hand_computed():
    mask = np.zeros((32, 32), dtype=bool)
    mask[:8, :16] = True  # exactly half of cell 0 (128 of 256 pixels)
    mask[16:, 16:] = True  # all of cell 3
    mask[16:24, :15] = True  # 120 of 256 pixels of cell 2
    assert token_mask_from_pixels(mask, 16).tolist() == [True, False, False, True]
    mask[:8, :16] = False
    mask[:8, :15] = True
    mask[0, 15] = True  # 121 pixels of cell 0: just under half
    assert token_mask_from_pixels(mask, 16).tolist() == [False, False, False, True]


def test_token_rule_ignores_the_margin_beyond_g_times_p():
    mask = np.zeros((40, 40), dtype=bool)  # G = 2 with p = 16; rows/cols 32..39 belong to no token
    mask[32:, :] = True
    mask[:, 32:] = True
    assert token_mask_from_pixels(mask, 16).tolist() == [False] * 4


@pytest.mark.parametrize("size,patch", [(64, 8), (100, 16), (224, 16)])
def test_token_rule_matches_a_loop_over_cells(size, patch):
    mask = np.random.default_rng(size).random((size, size)) < 0.5
    g = size // patch
    expected = [
        mask[r * patch : (r + 1) * patch, c * patch : (c + 1) * patch].sum() * 2 >= patch * patch
        for r in range(g)
        for c in range(g)
    ]
    assert token_mask_from_pixels(mask, patch).tolist() == expected


# --- every condition, every size ------------------------------------------------------------------------------


@pytest.mark.parametrize("patch", PATCHES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("condition", CONDITIONS)
def test_condition_contract(condition, size, patch):
    image = face(size)
    before = image.copy()
    res = occlude(image, condition, sample_key="s/1", patch_size=patch)
    g = size // patch
    assert np.array_equal(image, before), "input modified"
    assert res.image.shape == (size, size, 3) and res.image.dtype == np.uint8
    assert res.pixel_mask.shape == (size, size) and res.pixel_mask.dtype == bool
    assert res.token_mask.shape == (g * g,) and res.token_mask.dtype == bool
    assert np.array_equal(res.token_mask, token_mask_from_pixels(res.pixel_mask, patch))
    if condition in OCCLUDERS:  # painted only on and right beside the (anti-aliased) footprint
        near = cv2.dilate(res.pixel_mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
        assert np.array_equal(res.image[~near], image[~near])
        assert np.abs(res.image[res.pixel_mask].astype(int) - image[res.pixel_mask]).max() > 20
    else:  # black fill exactly on the mask, untouched elsewhere
        assert (res.image[res.pixel_mask] == 0).all()
        assert np.array_equal(res.image[~res.pixel_mask], image[~res.pixel_mask])
    if condition == "clean":
        assert not res.pixel_mask.any() and np.array_equal(res.image, image)
    else:
        assert res.pixel_mask.any()


@pytest.mark.parametrize("patch", PATCHES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("fraction", [0.25, 0.50, 0.75])
def test_patch_ratio_is_exact_in_cells(fraction, size, patch):
    g = size // patch
    for key in KEYS[:4]:
        res = occlude(face(size), f"patch{round(fraction * 100)}", sample_key=key, patch_size=patch)
        assert res.token_mask.sum() == math.floor(fraction * g * g + 0.5)
        assert np.array_equal(res.pixel_mask, pixels_from_token_mask(res.token_mask, size, patch))


@pytest.mark.parametrize("patch", PATCHES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("fraction", [0.25, 0.50])
def test_square_ratio_is_the_pixel_fraction(fraction, size, patch):
    grid_aligned = 0
    for key in KEYS[:4]:
        res = occlude(face(size), f"square{round(fraction * 100)}", sample_key=key, patch_size=patch)
        assert fraction <= res.pixel_mask.mean() <= fraction + 0.02
        grid_aligned += np.array_equal(res.pixel_mask, pixels_from_token_mask(res.token_mask, size, patch))
    assert grid_aligned == 0, "squares should not follow the token grid"


def test_square_sides_between_half_and_twice_the_patch():
    res = occlude(face(224), "square25", sample_key="sides", patch_size=16)
    _, _, stats, _ = cv2.connectedComponentsWithStats(res.pixel_mask.astype(np.uint8), connectivity=4)
    w, h, area = stats[1:, cv2.CC_STAT_WIDTH], stats[1:, cv2.CC_STAT_HEIGHT], stats[1:, cv2.CC_STAT_AREA]
    single = (area == w * h) & (w == h)  # a lone square (or one square inside another)
    assert single.sum() >= 3
    assert ((w[single] >= 8) & (w[single] <= 32)).all()


@pytest.mark.parametrize("size", SIZES)
def test_halves_and_center(size):
    h = size // 2
    rows, cols = np.indices((size, size))
    expected = {"upper": rows < h, "lower": rows >= h, "left": cols < h, "right": cols >= h}
    for name, want in expected.items():
        assert np.array_equal(occlude(face(size), name, sample_key="x").pixel_mask, want)
    center = occlude(face(size), "center", sample_key="x").pixel_mask
    ys, xs = np.nonzero(center)
    assert center.sum() == h * h and ys.min() == xs.min() == (size - h) // 2
    assert abs((ys.min() + ys.max() + 1) / 2 - size / 2) <= 0.5


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("condition,line", [("eyes", EYE_LINE_Y), ("mouth", MOUTH_LINE_Y)])
def test_feature_bands(condition, line, size):
    mask = occlude(face(size), condition, sample_key="x").pixel_mask
    rows = np.nonzero(mask.any(axis=1))[0]
    assert mask[rows].all(), "full-width band"
    assert np.array_equal(rows, np.arange(rows[0], rows[-1] + 1)), "one contiguous band"
    assert abs(rows[0] / size - (line - 0.12)) <= 1 / size
    assert abs((rows[-1] + 1) / size - (line + 0.12)) <= 1 / size


@pytest.mark.parametrize("size", SIZES)
def test_surgical_mask_from_below_the_eyes_to_the_chin(size):
    for key in KEYS[:3]:
        mask = occlude(face(size), "mask", sample_key=key).pixel_mask
        mouth = mask[int(0.70 * size) : int(0.82 * size) + 1, int(0.36 * size) : int(0.64 * size) + 1]
        assert mouth.all(), "mouth region covered"
        assert all(covered(mask, p) for p in FIVE_POINTS[2:]), "nose tip and mouth corners covered"
        face_cols = mask[:, int(0.25 * size) : int(0.75 * size)]
        covered_rows = np.nonzero(face_cols.any(axis=1))[0] / size
        assert covered_rows.min() >= EYE_LINE_Y + 0.05, "eyes stay visible"
        assert covered_rows.max() >= 0.90, "reaches under the chin"
        centre_col = np.nonzero(mask[:, size // 2])[0] / size
        assert centre_col.min() <= NOSE_TIP_Y - 0.02


@pytest.mark.parametrize("size", SIZES)
def test_sunglasses_over_both_eyes_with_a_bridge(size):
    mask = occlude(face(size), "sunglasses", sample_key="x").pixel_mask
    ys, xs = np.indices(mask.shape)
    for eye in FIVE_POINTS[:2]:
        near_eye = (xs + 0.5 - eye[0] * size) ** 2 + (ys + 0.5 - eye[1] * size) ** 2 <= (0.05 * size) ** 2
        assert mask[near_eye].all(), "lens covers the eye"
    between = mask[:, int(0.495 * size) : int(0.505 * size) + 1]  # the crop's centre column(s)
    assert between.any(axis=1)[int((EYE_LINE_Y - 0.06) * size) : int(EYE_LINE_Y * size)].any(), "bridge"
    assert not between[int(EYE_LINE_Y * size) + 2 :].any(), "no lens between the eyes below the bridge"
    assert not mask[int(NOSE_TIP_Y * size) :].any(), "lower face untouched"


@pytest.mark.parametrize("size", SIZES)
def test_hand_over_one_side_of_the_upper_or_lower_face(size):
    seen = set()
    for key in [f"hand/{i}" for i in range(24)]:
        mask = occlude(face(size), "hand", sample_key=key).pixel_mask
        upper, image_left, _, _ = hand_pose(sample_rng(0, "hand", key))
        seen.add((upper, image_left))
        own = FIVE_POINTS[(0 if image_left else 1) if upper else (3 if image_left else 4)]
        assert covered(mask, own), "the hand covers its eye or mouth corner"
        other_half = FIVE_POINTS[3:] if upper else FIVE_POINTS[:2]
        assert not any(covered(mask, p) for p in other_half), "the other half of the face stays visible"
        ys, xs = np.nonzero(mask)
        assert ((xs.mean() + 0.5) / size < 0.5) == image_left
        assert ((ys.mean() + 0.5) / size < NOSE_TIP_Y) == upper
        skin = occlude(np.zeros((size, size, 3), np.uint8), "hand", sample_key=key).image[mask]
        assert (skin[:, 0] >= skin[:, 2]).mean() > 0.95, "skin tones: red above blue"
    assert len(seen) == 4, "all four placements occur"


# --- determinism and fills -----------------------------------------------------------------------------------


def test_seed_is_stable_across_processes_and_versions():
    # blake2b of "0\x1fpatch25\x1fBP4D/F001/T1/0001\x1fgeometry": must never change, or old results become irreproducible
    assert sample_rng(0, "patch25", "BP4D/F001/T1/0001").integers(0, 1000, 5).tolist() == [614, 825, 551, 812, 568]
    assert sample_rng(1, "patch25", "BP4D/F001/T1/0001").integers(0, 1000, 5).tolist() == [747, 587, 263, 93, 177]


@pytest.mark.parametrize("condition", ["patch50", "square25", "mask", "sunglasses", "hand"])
def test_same_key_same_pixels_different_key_differs(condition):
    image = face(96)
    a = occlude(image, condition, sample_key="a", seed=3, fill="noise")
    b = occlude(image, condition, sample_key="a", seed=3, fill="noise")
    assert np.array_equal(a.image, b.image) and np.array_equal(a.pixel_mask, b.pixel_mask)
    others = [occlude(image, condition, sample_key=k, seed=3, fill="noise") for k in ("b", "c", "d")]
    others.append(occlude(image, condition, sample_key="a", seed=4, fill="noise"))
    assert all(not np.array_equal(a.image, o.image) for o in others)


@pytest.mark.parametrize("condition", ["patch25", "square50"])
def test_fill_does_not_move_the_occlusion(condition):
    masks = [occlude(face(128), condition, sample_key="k", fill=f).pixel_mask for f in FILLS]
    assert all(np.array_equal(masks[0], m) for m in masks[1:])


def test_fills():
    image = face(128)
    painted = {f: occlude(image, "center", sample_key="k", fill=f) for f in FILLS}
    mask = painted["black"].pixel_mask
    px = {f: r.image[mask].astype(np.float64) for f, r in painted.items()}  # (n, 3)
    assert (px["black"] == 0).all()
    assert (px["mean"] == IMAGENET_MEAN_RGB).all() and IMAGENET_MEAN_RGB == (124, 116, 104)
    custom = occlude(image, "center", sample_key="k", fill="mean", mean_color=(10, 200, 30)).image[mask]
    assert (custom == (10, 200, 30)).all()
    assert abs(px["noise"].mean() - 127.5) < 3 and abs(px["noise"].std() - 73.9) < 3  # uniform 0..255

    def neighbour_corr(r):
        gray = r.image.mean(axis=2)[mask.any(axis=1)][:, mask.any(axis=0)]
        return np.corrcoef(gray[:, :-1].ravel(), gray[:, 1:].ravel())[0, 1]

    assert abs(neighbour_corr(painted["noise"])) < 0.1
    assert neighbour_corr(painted["texture"]) > 0.6 and px["texture"].std() > 10, "smooth but not flat"
    with pytest.raises(ValueError, match="mean_color"):
        occlude(image, "center", sample_key="k", fill="mean", mean_color=(0, 300, 0))


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="unknown occlusion condition 'nose'"):
        occlude(face(64), "nose", sample_key="k")
    with pytest.raises(ValueError, match="unknown fill 'blur'"):
        occlude(face(64), "upper", sample_key="k", fill="blur")
    with pytest.raises(ValueError, match="uint8"):
        occlude(face(64).astype(np.float32), "upper", sample_key="k")
    with pytest.raises(ValueError, match="square"):
        occlude(face(64)[:60], "upper", sample_key="k")


# --- training augmentation -----------------------------------------------------------------------------------


def test_random_occlusion_follows_the_weights_and_reuses_occlude():
    aug = RandomOcclusion({"clean": 1.0, "patch50": 3.0, "hand": 0.0}, fills={"black": 1, "noise": 1}, patch_size=8)
    rng = np.random.default_rng(0)
    draws = [aug.sample(rng) for _ in range(2000)]
    share = np.mean([c == "patch50" for c, _, _ in draws])
    assert abs(share - 0.75) < 0.04 and not any(c == "hand" for c, _, _ in draws)
    assert abs(np.mean([f == "noise" for _, f, _ in draws]) - 0.5) < 0.04

    image = face(64)
    condition, fill, seed = aug.sample(np.random.default_rng(7))
    res = aug(image, np.random.default_rng(7))
    ref = occlude(image, condition, sample_key="augment", seed=seed, patch_size=8, fill=fill)
    assert np.array_equal(res.image, ref.image) and res.token_mask.shape == (64,)


def test_random_occlusion_sequence_is_uniform_and_checks_names():
    aug = RandomOcclusion(["upper", "lower"])
    rng = np.random.default_rng(1)
    seen = {aug(face(64), rng).pixel_mask[0, 0] for _ in range(20)}
    assert seen == {True, False}
    with pytest.raises(ValueError, match="unknown conditions"):
        RandomOcclusion(["upper", "nose"])
    with pytest.raises(ValueError, match="weights"):
        RandomOcclusion({"upper": 0.0})


# --- gallery -------------------------------------------------------------------------------------------------


def test_gallery_draws_every_condition_and_outlines_occluded_tokens(tmp_path):
    from PIL import Image

    from occau.occlusion.gallery import cartoon_face, draw_gallery, outline_tokens

    face64 = cartoon_face(64)
    assert covered(face64.min(axis=2) < 90, FIVE_POINTS[0]), "the cartoon's irises sit on the template's eyes"
    token_mask = np.zeros(16, dtype=bool)
    token_mask[5] = True  # cell (1, 1): pixels 16..31
    edged = outline_tokens(face64, token_mask, 16)
    changed = np.nonzero((edged != face64).any(axis=2))
    assert set(changed[0]) == set(range(16, 32)) and set(changed[1]) == set(range(16, 32))
    out = draw_gallery([face64], ["clean", "patch50:noise", "hand"], tmp_path / "g.png", columns=2)
    assert Image.open(out).size == (260, 284)  # 2 columns x 2 rows of 1.3 x 1.42 inch tiles at 100 dpi
