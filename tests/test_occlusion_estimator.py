"""The learnt occlusion estimate: network shapes and token rule, its training data, the stage, the estimate registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from occau.checkpoints.io import CheckpointError, load_checkpoint
from occau.checkpoints.occlusion import load_occlusion_net
from occau.data.transforms import to_model_input
from occau.evaluation.occlusion_estimates import ESTIMATES, open_estimate
from occau.models.occlusion_net import OcclusionNet, OcclusionNetConfig
from occau.occlusion.colour_estimate import estimate_token_mask
from occau.occlusion.covered_faces import CoveredFaces, CoverRecipe, cover
from occau.occlusion.tokens import token_mask_from_pixels
from occau.training.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def synth_faces(n: int, size: int = 64) -> list[dict]:
    from occau.data.synthfacs import GENERATED_AUS, render_face
    from occau.data.synthfacs.identity import sample_identity

    return [{"image": render_face(sample_identity(np.random.default_rng(i)), np.full(len(GENERATED_AUS), 1.0), size)}
            for i in range(n)]


class FixedMap(OcclusionNet):
    """An estimator whose logits are a given map (to check the token rule by hand)."""

    def __init__(self, logits: torch.Tensor) -> None:
        super().__init__(OcclusionNetConfig(width=4))
        self.logits = logits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits.expand(images.shape[0], -1, -1, -1)


def test_net_shapes_for_every_crop_size() -> None:
    net = OcclusionNet(OcclusionNetConfig(width=4)).eval()
    with torch.no_grad():
        assert net(torch.randn(2, 3, 112, 112)).shape == (2, 1, 28, 28)
        assert net(torch.randn(2, 3, 224, 224)).shape == (2, 1, 28, 28)  # resized to the working size first
        assert net.covered_share(torch.randn(2, 3, 64, 64), 8).shape == (2, 64)
        assert net.token_mask(torch.randn(1, 3, 224, 224), 16).dtype == torch.bool
    assert OcclusionNet(OcclusionNetConfig(width=4, output_stride=16))(torch.randn(1, 3, 112, 112)).shape[-1] == 7
    with pytest.raises(ValueError, match="output_stride"):
        OcclusionNet(OcclusionNetConfig(output_stride=3))


def test_token_rule_is_the_protocols_at_least_half() -> None:
    """Left 40 % of the picture certainly covered: on a 224/16 grid (14 x 14) columns 0-4 hold 16*5 = 80 px <= 89.6,
    column 5 (80..96 px) is 60 % covered, the rest bare; the true token mask of the same pixels agrees."""
    logits = torch.full((1, 1, 28, 28), -20.0)
    logits[..., : round(0.4 * 28 * 10) // 10 + 1] = 20.0  # map columns 0..11 (of 28): the left 12/28 = 42.9 %
    net = FixedMap(logits).eval()
    share = net.covered_share(torch.zeros(1, 3, 224, 224), 16).reshape(14, 14)
    pixels = np.zeros((224, 224), dtype=bool)
    pixels[:, : 96] = True  # 12/28 of 224 = 96 px
    truth = token_mask_from_pixels(pixels, 16).reshape(14, 14)
    assert torch.allclose(share[:, :5], torch.ones(14, 5), atol=1e-3)
    assert torch.allclose(share[:, 7:], torch.zeros(14, 7), atol=1e-3)
    assert np.array_equal(net.token_mask(torch.zeros(1, 3, 224, 224), 16).reshape(14, 14).numpy(), truth)


def test_cover_gives_the_exact_footprint() -> None:
    face = synth_faces(1, 112)[0]["image"]
    for seed in range(12):
        rng = np.random.default_rng(seed)
        image, mask = cover(face, CoverRecipe(photos=()), rng)
        changed = np.abs(image.astype(int) - face.astype(int)).max(axis=2) > 0
        assert mask.shape == (112, 112) and mask.dtype == bool
        if not mask.any():
            assert np.array_equal(image, face)  # a clean draw leaves the face alone
        else:
            assert changed[mask].mean() > 0.5  # what is called covered was painted over (fills may match a pixel)
            import cv2

            around = cv2.dilate(mask.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
            assert not (changed & ~around & (np.abs(image.astype(int) - face.astype(int)).max(axis=2) > 60)).any()


def test_covered_faces_are_pure_functions_of_seed_epoch_index() -> None:
    faces = synth_faces(3)
    train = CoveredFaces(faces, CoverRecipe(photos=()), seed=5, train=True)
    a, b = train[1], train[1]
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["cover"], b["cover"])
    assert a["image"].shape == (3, 112, 112) and a["cover"].shape == (112, 112)
    assert not torch.equal(train[1]["image"], train[1 + len(train)]["image"])  # another epoch, another draw
    val = CoveredFaces(faces, CoverRecipe(photos=()), seed=5)
    assert torch.equal(val[2]["cover"], val[2]["cover"]) and set(val[2]["cover"].unique().tolist()) <= {0.0, 1.0}


def test_recipe_errors_name_the_bad_key() -> None:
    with pytest.raises(ValueError, match="kinds: unknown \\['umbrella'\\]"):
        CoverRecipe(kinds=("umbrella",))
    with pytest.raises(ValueError, match="photos: unknown"):
        CoverRecipe(photos=("mona_lisa",))
    with pytest.raises(ValueError, match="probabilities"):
        CoverRecipe(clean=1.5)
    with pytest.raises(ValueError, match="grey are probabilities"):
        CoverRecipe(grey=-0.1)
    with pytest.raises(ValueError, match=r"\['astronaut'\] are both trained on and validated on"):
        CoverRecipe(photos=("astronaut",), val_photos=("astronaut",))


def test_estimates_by_name(tmp_path: Path) -> None:
    faces = synth_faces(2)
    crops = np.stack([f["image"] for f in faces])  # (2, 64, 64, 3)
    images = to_model_input(crops)
    assert not open_estimate("none")(images, 8).any()
    colour = open_estimate("colour")(images, 8).numpy()
    assert np.array_equal(colour, np.stack([estimate_token_mask(c, 8) for c in crops]))
    with pytest.raises(ValueError, match="unknown occlusion estimate"):
        open_estimate("oracle")
    assert ESTIMATES == ("colour", "learnt", "none")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """The packaged recipe on the smoke preset, one short epoch, with a photo to train on and one to select on."""
    out = tmp_path_factory.mktemp("occlusion")
    cmd = [sys.executable, "-m", "occau", "train", "occlusion/synthfacs_photos.yaml", "--out", str(out / "run"),
           f"data.cache_dir={out / 'cache'}", "data.preset=smoke", "optim.epochs=1", "loss.photos=[astronaut]",
           "loss.photo_repeats=16", "loss.val_photos=[grace_hopper]", "loss.val_photo_repeats=4",
           "data.val_faces_fraction=0.1", "trainer.progress_bar=false", "model.arch=unet_w8"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return out / "run" / "occlusion.safetensors"


def test_occlusion_stage_trains_exports_and_loads(trained: Path, tmp_path: Path) -> None:
    state, meta = load_checkpoint(trained)
    assert meta["kind"] == "occlusion" and meta["model"]["width"] == 8
    assert meta["training"]["loss"]["kinds"] == list(load_config("occlusion/synthfacs_photos.yaml").loss.kinds)
    chosen = meta["selection"]["val_token"]  # weights and token threshold selected on validation, together
    assert set(chosen) == {"precision", "recall", "f1", "false_cover", "threshold"}
    assert meta["model"]["threshold"] == chosen["threshold"] and 0.2 <= chosen["threshold"] <= 0.8
    net, _ = load_occlusion_net(trained)
    images = to_model_input(np.stack([f["image"] for f in synth_faces(2)]))
    learnt = open_estimate("learnt", trained)(images, 8)
    assert torch.equal(learnt, net.token_mask(images, 8))
    with pytest.raises(CheckpointError, match="not an occlusion estimator"):
        load_occlusion_net(ROOT / "src" / "occau" / "weights" / "synthfacs_mae_vit_tiny_patch8_64.safetensors")


def test_recipe_experiment_script_scores_a_variant_on_the_selection_faces_only(trained: Path, tmp_path: Path) -> None:
    """benchmarks/occlusion_recipe.py on the smoke-trained run (reused, not retrained): one table row with its own
    validation score, and scores on Grace Hopper and SynthFACS, never on the cameraman that measures the result."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from occlusion_recipe import main
    finally:
        sys.path.pop(0)
    main(["--variants", "run=model.arch=unet_w8", "--out", str(trained.parent.parent), "--results", str(tmp_path),
          "--synth", "1", "--draws", "1", "--threads", "1"])
    row = json.loads((tmp_path / "occlusion_recipe.jsonl").read_text())
    selection = json.loads((trained.parent / "selection.json").read_text())["occlusion"]
    assert row["val"]["f1"] == selection["val_token"]["f1"] and set(row["scores"]) == {"grace_hopper", "synth"}
    assert set(row["scores"]["synth"]) == {"clean", "mask", "sunglasses", "hand"}
    assert "| run | `model.arch=unet_w8` |" in (tmp_path / "occlusion_recipe.md").read_text()


def test_benchmark_measure_scores_any_estimate(trained: Path) -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        from detect_occlusion import measure, occlusion_rows
    finally:
        sys.path.pop(0)
    faces = {f"f{i}": f["image"] for i, f in enumerate(synth_faces(2, 224))}
    rows = measure(faces, 16, "none", draws=1)
    assert [(r["occluder"], r["fill"]) for r in rows] == [(o, f) for o, f, _ in occlusion_rows()]
    assert all(r["found"] == 0 and r["false_cover"] == 0 for r in rows)  # "none" never calls a token covered
    # every occluder covers some face tokens, but a cap sits on the hair, above the scored face region
    assert all(r["true"] > 0 for r in rows if r["occluder"] not in ("clean", "cap"))
    learnt = measure(faces, 16, "learnt", str(trained), draws=1)
    assert all(0 <= r["false_cover"] <= 1 for r in learnt)


def test_shipping_needs_its_own_measurements_and_unseen_kinds(trained: Path, tmp_path: Path) -> None:
    import hashlib

    from occau.checkpoints.io import save_checkpoint
    from occau.checkpoints.shipped import ESTIMATOR_LICENSE, ship_occlusion_estimator

    measured = tmp_path / "measured.json"
    measured.write_text(json.dumps({"command": "python benchmarks/detect_occlusion.py ...", "ms_per_face": 3.0,
                                    "tables": {"grace_hopper": []},
                                    "checkpoint_sha256": hashlib.sha256(trained.read_bytes()).hexdigest()}))
    shipped = ship_occlusion_estimator(trained, measured, tmp_path / "shipped.safetensors")
    state, meta = load_checkpoint(shipped)
    assert meta["license"] == ESTIMATOR_LICENSE and meta["measured"]["ms_per_face"] == 3.0
    assert all(torch.equal(state[k], v) for k, v in load_checkpoint(trained)[0].items())
    assert torch.equal(open_estimate("learnt", shipped)(torch.zeros(1, 3, 64, 64), 8),
                       open_estimate("learnt", trained)(torch.zeros(1, 3, 64, 64), 8))

    state, meta = load_checkpoint(trained)
    meta["training"]["loss"]["kinds"] = [*meta["training"]["loss"]["kinds"], "hand"]
    cheat = save_checkpoint(tmp_path / "cheat.safetensors", state, meta)
    with pytest.raises(ValueError, match=r"trained on kinds it is judged on: \['hand'\].*measured another file"):
        ship_occlusion_estimator(cheat, measured, tmp_path / "no.safetensors")
    assert not (tmp_path / "no.safetensors").exists()


def test_real_occluders_already_in_a_photo_are_known() -> None:
    """The cameraman's camera (right of his face in the aligned crop) is left out of the scores; the other photos
    have no occluder of their own."""
    from occau.data.photos import PUBLIC_PHOTOS, aligned_photo, covered_in_photo

    box = covered_in_photo("cameraman", 112)
    assert box.shape == (112, 112) and 0.05 < box.mean() < 0.4
    assert box[:, 56:].sum() > 4 * box[:, :56].sum()  # on the right half, where the camera is
    for name in set(PUBLIC_PHOTOS) - {"cameraman"}:
        assert not covered_in_photo(name, 112).any()
        assert aligned_photo(name, 112).shape == (112, 112, 3)
    with pytest.raises(ValueError, match="unknown photo 'mona_lisa'"):
        aligned_photo("mona_lisa", 112)


def test_camera_turns_a_picture_grey_as_often_as_the_recipe_says() -> None:
    """``grey`` is the chance of grey scale: 1 -> every picture grey (JPEG may leave a level of chroma), 0 -> none."""
    from occau.occlusion.covered_faces import camera

    rng = np.random.default_rng(0)
    colourful = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    spread = [[int(np.ptp(camera(colourful, np.random.default_rng(i), grey=g).astype(int), axis=2).max())
               for i in range(8)] for g in (1.0, 0.0)]
    assert max(spread[0]) <= 2 and min(spread[1]) > 20
