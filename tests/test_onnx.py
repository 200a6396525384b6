"""``occau export onnx`` and ``occau detect --runtime onnx``: the exported graph gives PyTorch's probabilities (to
``ATOL``) for any batch size and occlusion, never reads pixels under occluded tokens, and the detector gives the same
rows with either runtime. A tiny random-weight student bundle (as in test_detect.py) stands in for a trained one."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from occau.checkpoints.io import METADATA_KEY, read_meta
from occau.checkpoints.student import load_student
from occau.cli import main as cli
from occau.inference import Detector
from occau.models.student import EncoderStudent
from tiny_student import AUS, PATCH, SIZE, save_tiny_student

pytest.importorskip("onnxruntime")  # the dev extra installs the onnx extra, so CI runs these
pytest.importorskip("onnxscript")

GRID = SIZE // PATCH
L = GRID * GRID
ATOL = 1e-4  # the tolerance docs/detect.md states for ONNX vs PyTorch probabilities


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return save_tiny_student(tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.fixture(scope="module")
def exported(bundle, tmp_path_factory) -> Path:
    """The bundle through the command line, as a user exports it."""
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert cli(["export", "onnx", str(bundle), str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def reference(bundle) -> EncoderStudent:
    encoder, student, _ = load_student(bundle)
    return EncoderStudent(encoder, student).eval()


@pytest.fixture(scope="module")
def runner(exported):
    from occau.inference.onnx_student import OnnxStudentRunner

    return OnnxStudentRunner(exported)


def random_masks(occluded: list[int], seed: int) -> torch.Tensor:
    """(B, L) bool with ``occluded[b]`` randomly placed occluded tokens in face b."""
    rng = np.random.default_rng(seed)
    masks = np.zeros((len(occluded), L), bool)
    for b, n in enumerate(occluded):
        masks[b, rng.choice(L, n, replace=False)] = True
    return torch.from_numpy(masks)


def pixel_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """(B, L) token mask -> (B, 1, S, S) bool, True on the pixels of occluded tokens (row-major patches)."""
    grid = token_mask.view(-1, 1, GRID, GRID)
    return grid.repeat_interleave(PATCH, dim=2).repeat_interleave(PATCH, dim=3)


# Occluded tokens per face: different visible counts in one batch (so padding to the batch's K), faces with no
# occluded token, one token left, every token covered (in a face, and in a whole batch: PyTorch K = 0), more faces.
CASES = {
    "clean": [0, 0],
    "mixed": [0, 5, 32, 63, L, 20],
    "same-count": [32, 32, 32],
    "single-face": [48],
    "all-covered": [L, L],
    "large-batch": [0, 8, 16, 24, 32, 40, 48, 56, 60, 62, 63, L],
}


@pytest.mark.parametrize("case", list(CASES))
def test_onnx_equals_pytorch(runner, reference, case):
    occluded = CASES[case]
    token_mask = random_masks(occluded, seed=len(case))
    images = torch.randn(len(occluded), 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = reference(images, token_mask).probs.numpy()  # (B, N)
    got, head_seconds = runner.run(images, token_mask)
    assert got.shape == (len(occluded), len(AUS)) and got.dtype == np.float32 and head_seconds == 0.0
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_pixels_under_occluded_tokens_cannot_change_the_onnx_output(runner):
    token_mask = random_masks([0, 20, 40, 63], seed=3)
    images = torch.randn(4, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    covered = pixel_mask(token_mask)  # (B, 1, S, S)
    noise = 100 * torch.randn(images.shape, generator=torch.Generator().manual_seed(4))
    for replacement in (noise, torch.full_like(images, float("nan"))):
        changed = torch.where(covered, replacement, images)
        np.testing.assert_allclose(runner.run(changed, token_mask)[0], runner.run(images, token_mask)[0], atol=1e-6)
    # ... and the same pixels do matter where they are visible
    visible_changed = torch.where(covered, images, noise)
    change = np.abs(runner.run(visible_changed, token_mask)[0] - runner.run(images, token_mask)[0])  # (B, N)
    assert (change.max(axis=1) > 1e-3).all()


def test_metadata_travels_with_the_graph(exported, bundle, runner):
    import onnx

    props = {p.key: p.value for p in onnx.load(str(exported)).metadata_props}
    assert json.loads(props[METADATA_KEY]) == read_meta(bundle) == runner.meta
    assert (runner.size, runner.patch, runner.num_aus) == (SIZE, PATCH, len(AUS))


@pytest.fixture(scope="module")
def photo_and_mask(tmp_path_factory) -> tuple[Path, Path]:
    """The astronaut, and a user mask covering her mouth and chin (so faces reach the model partly covered)."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photo")
    bgr = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)  # (512, 512, 3)
    mask = np.zeros(bgr.shape[:2], np.uint8)
    mask[130:170, 180:260] = 255
    cv2.imwrite(str(folder / "astronaut.png"), bgr)
    cv2.imwrite(str(folder / "mask.png"), mask)
    return folder / "astronaut.png", folder / "mask.png"


@pytest.mark.parametrize("masked", [False, True])
def test_detect_runtime_onnx_gives_the_rows_of_torch(bundle, exported, photo_and_mask, tmp_path, masked):
    photo, mask = photo_and_mask
    extra = ["--masks", str(mask)] if masked else ["--occlusion", "auto"]
    frames = {}
    for runtime, checkpoint in (("torch", bundle), ("onnx", exported)):
        out = tmp_path / f"{runtime}.csv"
        assert cli(["detect", str(photo), "--checkpoint", str(checkpoint), "--runtime", runtime, "--out", str(out),
                    "--quiet", *extra]) == 0
        frames[runtime] = pd.read_csv(out)
    torch_rows, onnx_rows = frames["torch"], frames["onnx"]
    probs = [f"AU{a:02d}" for a in AUS]
    presence = [f"{c}_c" for c in probs]
    assert len(torch_rows) == len(onnx_rows) == 1
    if masked:
        assert (onnx_rows.tokens_visible < L).all()
    pd.testing.assert_frame_equal(onnx_rows.drop(columns=probs + presence), torch_rows.drop(columns=probs + presence))
    np.testing.assert_allclose(onnx_rows[probs].to_numpy(float), torch_rows[probs].to_numpy(float), atol=ATOL, rtol=0)
    assert (onnx_rows[presence].to_numpy() == (onnx_rows[probs].to_numpy() >= 0.5)).all()


def test_detector_api_with_onnx_runtime(exported, bundle):
    """``Detector(..., runtime="onnx")``: same ``predict`` as torch; encoder and head time are one number."""
    crops = np.random.default_rng(0).integers(0, 256, (3, SIZE, SIZE, 3), dtype=np.uint8)
    masks = random_masks([0, 30, 63], seed=5).numpy()
    on_onnx = Detector(exported, device="cpu", runtime="onnx")
    np.testing.assert_allclose(on_onnx.predict(crops, masks), Detector(bundle, device="cpu").predict(crops, masks),
                               atol=ATOL, rtol=0)
    assert on_onnx.times.encoder > 0 and on_onnx.times.head == 0 and on_onnx.aus == AUS


@pytest.mark.parametrize("module", ["onnxruntime", "onnxscript"])
def test_missing_extra_is_one_line_and_status_2(bundle, exported, photo_and_mask, tmp_path, monkeypatch, capsys,
                                                module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` now raises ImportError
    if module == "onnxruntime":
        argv = ["detect", str(photo_and_mask[0]), "--checkpoint", str(exported), "--runtime", "onnx",
                "--out", str(tmp_path / "r.csv"), "--quiet"]
    else:
        argv = ["export", "onnx", str(bundle), str(tmp_path / "m.onnx")]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and module in err and 'pip install "occau[onnx]"' in err, err


@pytest.mark.parametrize("runtime", ["torch", "onnx"])
def test_checkpoint_of_the_other_runtime_is_refused(bundle, exported, photo_and_mask, tmp_path, capsys, runtime):
    wrong = exported if runtime == "torch" else bundle
    assert cli(["detect", str(photo_and_mask[0]), "--checkpoint", str(wrong), "--runtime", runtime,
                "--out", str(tmp_path / "r.csv"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert str(wrong) in err and ("--runtime onnx" if runtime == "torch" else "occau export onnx") in err


def test_onnx_runtime_refuses_what_it_cannot_do(exported):
    with pytest.raises(ValueError, match="fp32"):
        Detector(exported, device="cpu", runtime="onnx", precision="bf16")
    with pytest.raises(ValueError, match="CPU"):
        Detector(exported, device="cuda", runtime="onnx")
