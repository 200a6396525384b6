"""``occau detect`` on a real photograph (scikit-image's astronaut, public domain) with painted occluders, user masks,
a video made here, and bad inputs. A tiny random-weight student bundle stands in for a trained one: the numbers
checked are the pipeline's (geometry, visibility, batching, files), not the AUs'."""

from __future__ import annotations

import zlib
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from occau.cli import main as cli
from occau.data.transforms import to_model_input
from occau.faces.align import align_face, similarity_transform
from occau.faces.face_detector import FaceDetection
from occau.inference import Detector, failures_path, result_columns
from occau.inference.detector import outside_picture, region_slices
from occau.inference.tracking import FaceTracker
from occau.occlusion import OCCLUDERS
from occau.occlusion.colour_estimate import estimate_token_mask
from tiny_student import AUS, PATCH, SIZE, astronaut_bgr, make_video, save_tiny_student

# yuface on the astronaut (FACE_FRONTEND.md: all front ends agree within ~5 px): eyes, nose, mouth corners.
ASTRONAUT_LM = np.array([[200, 101], [247, 102], [220, 124], [198, 142], [239, 143]], dtype=np.float64)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def detector(bundle) -> Detector:
    return Detector(bundle, device="cpu")


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return astronaut_bgr()  # (512, 512, 3)


@pytest.fixture(scope="module")
def photo(astronaut, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    cv2.imwrite(str(path), astronaut)
    return path


def paint(bgr: np.ndarray, occluder: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Paint a protocol occluder on the photo where it falls on the aligned face -> (photo, user mask (H, W) uint8
    white = covered, footprint in the 224-px aligned crop)."""
    matrix = similarity_transform(ASTRONAUT_LM, 224)
    layer = OCCLUDERS[occluder](224, np.random.default_rng(seed))
    h, w = bgr.shape[:2]
    back = {"dsize": (w, h), "flags": cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, "borderValue": 0}
    alpha = cv2.warpAffine(layer.alpha, matrix, **back)[..., None]  # (H, W, 1)
    color = cv2.warpAffine(layer.color, matrix, **back)[..., ::-1]  # (H, W, 3) BGR
    out = np.clip(np.rint(bgr * (1 - alpha) + color * alpha), 0, 255).astype(np.uint8)
    return out, ((alpha[..., 0] >= 0.5) * 255).astype(np.uint8), layer.footprint


def expected_visibility(footprint224: np.ndarray) -> dict[int, float]:
    small = cv2.resize(footprint224.astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_AREA) >= 0.5
    return {au: float(1 - small[r, c].mean()) for au, (r, c) in region_slices(AUS, SIZE).items()}


# ------------------------------------------------------------------------------------------------ the photograph
def test_api_on_photograph(detector, photo, astronaut):
    df = detector.detect(photo)
    assert list(df.columns) == result_columns(AUS) and len(df) == 1 and df.attrs["failures"] == []
    row = df.iloc[0]
    lm = np.stack([row[[f"x_{i}" for i in range(5)]], row[[f"y_{i}" for i in range(5)]]], axis=1).astype(float)
    assert np.abs(lm - ASTRONAUT_LM).max() <= 4
    assert 60 < row.FaceRectWidth < 130 and row.FaceRectX < lm[:, 0].min() and row.FaceScore > 0.5
    # The probabilities are the model's on the aligned crop, with nothing covered: the face is inside the picture.
    crop, _ = align_face(astronaut, lm, SIZE)
    probs = detector.predict(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)[None], np.zeros((1, (SIZE // PATCH) ** 2), bool))
    np.testing.assert_allclose(row[[f"AU{a:02d}" for a in AUS]].to_numpy(float), probs[0], atol=2e-3)
    assert (row[[f"AU{a:02d}_c" for a in AUS]].to_numpy(int) == (probs[0] >= 0.5)).all()
    assert row.visible_fraction == 1.0 and row.tokens_visible == 64 and row.occlusion == "none"
    assert (row[[f"AU{a:02d}_visible" for a in AUS]] == 1.0).all() and np.isnan(row.timestamp)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_cli_on_the_gpu_agrees_with_the_cpu(clip, bundle, tmp_path, precision):
    """``occau detect --device cuda`` (batched, fp32 and bf16) gives the CPU's rows and probabilities."""
    rows = {}
    for device, p in (("cpu", "fp32"), ("cuda", precision)):
        out = tmp_path / f"{device}.csv"
        assert cli(["detect", str(clip), "--checkpoint", str(bundle), "--out", str(out), "--device", device,
                    "--precision", p, "--batch-size", "4", "--quiet"]) == 0
        rows[device] = pd.read_csv(out)
    columns = [f"AU{a:02d}" for a in AUS]
    assert len(rows["cuda"]) == len(rows["cpu"]) == 8
    np.testing.assert_allclose(rows["cuda"][columns].to_numpy(float), rows["cpu"][columns].to_numpy(float),
                               atol=1e-4 if precision == "fp32" else 0.01)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_cli_in_half_precision_agrees_with_fp32(clip, bundle, tmp_path, precision):
    """``occau detect --precision bf16`` (and fp16) end to end on the video: every frame gets its row, and each AU
    probability is within 0.01 of fp32's (bf16 keeps 8 significant bits; measured 0.003 for bf16, 0.0006 for fp16)."""
    rows = {}
    for p in ("fp32", precision):
        out = tmp_path / f"{p}.csv"
        assert cli(["detect", str(clip), "--checkpoint", str(bundle), "--out", str(out), "--precision", p,
                    "--quiet"]) == 0
        rows[p] = pd.read_csv(out)
    columns = [f"AU{a:02d}" for a in AUS]
    assert len(rows[precision]) == len(rows["fp32"]) == 8
    np.testing.assert_allclose(rows[precision][columns].to_numpy(float), rows["fp32"][columns].to_numpy(float),
                               atol=0.01)


def test_covered_pixels_cannot_change_the_result(detector, photo, astronaut):
    crop = cv2.cvtColor(align_face(astronaut, ASTRONAUT_LM, SIZE)[0], cv2.COLOR_BGR2RGB)
    mask = np.zeros(64, bool)
    mask[40:] = True  # the lower part of the face
    noisy = crop.copy()
    noisy[40 // 8 * 8 :] = np.random.default_rng(0).integers(0, 256, noisy[40:].shape, dtype=np.uint8)
    a, b = detector.predict(np.stack([crop, noisy]), np.stack([mask, mask]))
    np.testing.assert_allclose(a, b, atol=1e-6)  # only visible tokens reach the encoder
    c = detector.predict(noisy[None], np.zeros((1, 64), bool))[0]
    assert np.abs(c - a).max() > 1e-3  # ... and the same pixels do matter when visible


@pytest.mark.parametrize("occluder", ["mask", "sunglasses", "hand"])
def test_painted_occluder_with_user_mask(detector, astronaut, tmp_path, occluder):
    painted, user_mask, footprint = paint(astronaut, occluder)
    cv2.imwrite(str(tmp_path / "face.png"), painted)
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "masks" / "face_mask.png"), user_mask)
    df = detector.detect(tmp_path / "face.png", masks=tmp_path / "masks")
    assert len(df) == 1 and df.occlusion[0] == "mask"
    expected = expected_visibility(footprint)
    got = {au: df[f"AU{au:02d}_visible"][0] for au in AUS}
    for au in AUS:  # landmarks move up to ~8 px under the occluder (shifting the crop); visibility follows the mask
        assert abs(got[au] - expected[au]) < 0.2, (occluder, au, got[au], expected[au])
    assert df.tokens_visible[0] < 64
    if occluder == "mask":
        assert got[1] > 0.9 and got[12] < 0.2 and got[17] < 0.2
    if occluder == "sunglasses":
        assert got[7] < 0.5 and got[17] == 1.0


# Most of the lip-corner (AU12) and lip (AU23) regions judged covered under the protocol's surgical mask, the brows
# (AU01) not. Measured on this 64-px crop (8-px tokens): colour leaves 0.22 / 0.03 of them visible, the learnt
# estimator 0.44 / 0.50 (it works at 112 px and misses the mask's edge tokens at this size; at 224 px its recall on
# this face is 0.80, docs/benchmarks/detect_occlusion_learnt.md).
MOST_COVERED = {"colour": 0.4, "learnt": 0.55, "auto": 0.55}


@pytest.mark.parametrize("mode", ["auto", "learnt", "colour"])
def test_estimated_occlusion_finds_a_painted_mask(detector, astronaut, tmp_path, mode):
    cv2.imwrite(str(tmp_path / "masked.png"), paint(astronaut, "mask")[0])
    df = detector.detect(tmp_path / "masked.png", occlusion=mode)
    assert df.occlusion[0] == mode
    most = MOST_COVERED[mode]
    assert df.AU12_visible[0] < most and df.AU23_visible[0] < most and df.AU01_visible[0] > 0.8
    clean = detector.detect(astronaut[..., ::-1].copy(), occlusion=mode)  # an RGB array input
    assert clean.input[0] == "array0" and clean.AU12_visible[0] > 0.9


def test_learnt_occlusion_is_the_estimators_token_mask(bundle, astronaut, tmp_path):
    """The tokens the student is told are covered are exactly the estimator's on the aligned crop."""
    from occau.evaluation.occlusion_estimates import open_estimate

    detector = Detector(bundle, device="cpu", occlusion="learnt")
    masked = paint(astronaut, "sunglasses")[0]
    df = detector.detect(masked[..., ::-1].copy())
    lm = np.stack([df.loc[0, [f"x_{i}" for i in range(5)]], df.loc[0, [f"y_{i}" for i in range(5)]]], axis=1)
    crop = cv2.cvtColor(align_face(masked, lm.astype(float), SIZE)[0], cv2.COLOR_BGR2RGB)
    judged = open_estimate("learnt")(to_model_input(crop[None]), PATCH)[0].numpy()
    assert df.tokens_visible[0] == int((~judged).sum()) < (SIZE // PATCH) ** 2
    with pytest.raises(Exception, match="no such file"):
        Detector(bundle, device="cpu", occlusion="learnt", estimator=tmp_path / "missing.safetensors")


# ------------------------------------------------------------------------------------------------ video
@pytest.fixture(scope="module")
def clip(astronaut, tmp_path_factory) -> Path:
    """8 frames, 256 px: the face moves right 4 px a frame; in frames 4 and 5 a black card hides it."""
    frames = []
    for i in range(8):
        f = cv2.resize(np.roll(astronaut, 4 * i, axis=1), (256, 256), interpolation=cv2.INTER_AREA)
        if i in (4, 5):
            f[10:120, 70:175] = 0
        frames.append(f)
    return make_video(tmp_path_factory.mktemp("video") / "clip.avi", frames)


def test_cli_on_video_reuses_last_face_and_draws(clip, bundle, tmp_path):
    out = tmp_path / "res.csv"
    rc = cli(["detect", str(clip), "--checkpoint", str(bundle), "--out", str(out), "--overlay", str(tmp_path / "ov"),
              "--batch-size", "3", "--quiet"])
    assert rc == 0 and not failures_path(out).exists()
    df = pd.read_csv(out)
    assert df.frame.tolist() == list(range(8)) and (df.face_id == 0).all()
    np.testing.assert_allclose(df.timestamp, np.arange(8) / 10.0, atol=1e-6)
    assert df.tracked.tolist() == [0, 0, 0, 0, 1, 1, 0, 0] and df.FaceScore.isna().tolist()[4:6] == [True, True]
    assert (df.x_0[4:6] == df.x_0[3]).all()  # the last good landmarks, so the same alignment transform
    assert df.x_0[7] > df.x_0[0] + 10  # the face moved 7 * 2 px at this scale
    for name in ("clip_overlay.mp4", "clip_aus.png"):
        assert (tmp_path / "ov" / name).stat().st_size > 1000
    cap = cv2.VideoCapture(str(tmp_path / "ov" / "clip_overlay.mp4"))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 8
    cap.release()


def test_video_skip_frames_and_mask_video(clip, detector, tmp_path):
    cap = cv2.VideoCapture(str(clip))
    masks = []
    while (ok := cap.read())[0]:
        m = np.zeros(ok[1].shape, np.uint8)
        m[68:] = 255  # from the mouth down
        masks.append(m)
    (tmp_path / "m").mkdir()
    make_video(tmp_path / "m" / "clip.avi", masks)
    df = detector.detect(clip, skip_frames=2, masks=tmp_path / "m")
    assert df.frame.tolist() == [0, 3, 6] and (df.occlusion == "mask").all()
    assert (df.AU17_visible < 0.5).all() and (df.AU01_visible > 0.9).all()


# ------------------------------------------------------------------------------------------------ bad inputs
def huge_png(path: Path, side: int = 12000) -> Path:
    """A tiny file whose header claims side x side pixels (only the header is ever read)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    ihdr = side.to_bytes(4, "big") * 2 + bytes([8, 0, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def test_bad_inputs_are_listed_and_the_rest_goes_on(photo, bundle, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "corrupt.jpg").write_bytes(photo.read_bytes()[:300])
    (bad / "notes.jpg").write_text("this is a text file, not a JPEG\n")
    (tmp_path / "empty").mkdir()
    noise = np.random.default_rng(0).integers(0, 256, (3, 96, 128, 3), dtype=np.uint8)
    make_video(bad / "noface.avi", list(noise))
    huge_png(bad / "huge.png")
    out = tmp_path / "out" / "res.csv"
    rc = cli(["detect", str(photo), str(bad), str(tmp_path / "empty"), str(tmp_path / "nothing*.jpg"),
              "--checkpoint", str(bundle), "--out", str(out), "--quiet"])
    assert rc == 3
    assert pd.read_csv(out).input.tolist() == [str(photo)]
    fails = pd.read_csv(failures_path(out))
    reasons = dict(zip(fails.input.map(lambda s: Path(s).name), fails.reason))
    assert set(reasons) == {"corrupt.jpg", "notes.jpg", "noface.avi", "huge.png", "empty", "nothing*.jpg"}
    assert "cannot decode image" in reasons["corrupt.jpg"] or "not a readable image" in reasons["corrupt.jpg"]
    assert "not a readable image" in reasons["notes.jpg"]
    assert "no face found in 3 frame(s)" in reasons["noface.avi"]
    assert "12000 x 12000 = 144 MP" in reasons["huge.png"] and "limit" in reasons["huge.png"]
    assert "no image or video files" in reasons["empty"] and "matched no" in reasons["nothing*.jpg"]


def test_rows_written_before_a_crash_are_kept(detector, photo, tmp_path, monkeypatch):
    calls = []
    real = detector.predict

    def crash_on_second(*args):
        calls.append(1)
        if len(calls) >= 2:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(detector, "predict", crash_on_second)
    out = tmp_path / "res.csv"
    with pytest.raises(KeyboardInterrupt):
        detector.detect([photo, photo], batch_size=1, out=out)
    assert len(pd.read_csv(out)) == 1


# ------------------------------------------------------------------------------------------------ parts
def test_tracker_keeps_ids_and_bridges_short_gaps():
    def det(x: float) -> FaceDetection:
        return FaceDetection(np.array([x, 0, x + 10, 10.0]), 0.9, np.zeros((5, 2)), "yuface")

    t = FaceTracker(max_gap=2)
    assert [f.face_id for f in t.update(0, [det(0), det(100)])] == [0, 1]
    assert [f.face_id for f in t.update(1, [det(101), det(2)])] == [1, 0]  # matched by overlap, not order
    assert [(f.face_id, f.tracked) for f in t.update(2, [])] == [(1, True), (0, True)]
    assert t.update(3, []) != [] and t.update(4, []) == []  # gap of 3 frames > max_gap
    assert [f.face_id for f in t.update(5, [det(300)])] == [2]  # a new face gets a new id


def test_outside_picture_is_covered():
    matrix = np.array([[1.0, 0, -10], [0, 1.0, 0]])  # crop (x, y) = source (x + 10, y)
    out = outside_picture(matrix, (64, 64), 64)
    assert out[:, 54:].all() and not out[:, :54].any()  # source columns 64.. lie outside


def test_colour_estimate_on_a_flat_face():
    skin = np.full((64, 64, 3), (205, 160, 130), np.uint8)
    assert not estimate_token_mask(skin, 8).any()
    covered = skin.copy()
    covered[40:, :] = (70, 110, 200)  # a blue mask over the lower face
    est = estimate_token_mask(covered, 8).reshape(8, 8)
    assert est[5:].sum() >= 10 and not est[:5].any()


def test_high_bit_depth_pictures_are_scaled_not_clipped(detector, astronaut, tmp_path):
    """16-bit grey/colour PNG, 16-bit TIFF and float TIFF of the astronaut decode to its 8-bit pixels (within
    rounding), so the face is found; clipping would have turned them white ("no face")."""
    from PIL import Image

    from occau.data.images import read_image, to_bgr8

    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    wide = astronaut.astype(np.uint16) * 257
    cv2.imwrite(str(tmp_path / "grey16.png"), grey.astype(np.uint16) * 257)  # Pillow opens it in mode I;16
    cv2.imwrite(str(tmp_path / "colour16.png"), wide)
    cv2.imwrite(str(tmp_path / "colour16.tif"), wide)
    cv2.imwrite(str(tmp_path / "float.tif"), astronaut.astype(np.float32) / 255)  # Pillow cannot identify it
    Image.fromarray(grey.astype(np.int32) * 257).save(tmp_path / "grey32.tif")
    for name in ("grey16.png", "grey32.tif"):
        assert Image.open(tmp_path / name).mode.startswith("I"), name
        got = read_image(tmp_path / name)
        assert got.dtype == np.uint8 and got.shape == astronaut.shape
        assert np.abs(got[:, :, 0].astype(int) - grey).max() <= 1, name
    for name in ("colour16.png", "colour16.tif", "float.tif"):
        assert np.abs(read_image(tmp_path / name).astype(int) - astronaut).max() <= 1, name
    assert to_bgr8(np.full((2, 2), 300, np.int32))[0, 0, 0] == round(300 * 255 / 65535)
    assert to_bgr8(np.full((2, 2, 3), 2.0, np.float32)).max() == 2  # floats above 1 are 0..255 values
    df = detector.detect([tmp_path / "grey16.png", tmp_path / "float.tif"])
    assert df.attrs["failures"] == [] and len(df) == 2
