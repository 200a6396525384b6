"""The unknown-occlusion axis: methods that take a mask, told an estimated one instead of the protocol's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from occau.evaluation.evaluate import ESTIMATE_KEY, EvalConfig, evaluate_conditions, unknown_occlusion_over_folds
from occau.evaluation.methods import MethodSet, ReconstructThenTeacher, StudentsOnVisible, TeacherOnOccluded
from occau.metrics import token_counts, token_scores
from occau.models.mae import MAEConfig, MaskedAutoencoderViT
from occau.models.megraphau import MEGraphAU, MEGraphAUConfig
from occau.models.student import LatentStudent, StudentConfig
from occau.occlusion.face_tensors import FaceTensors

CONDITIONS = ["clean", "patch50", "mask"]


def synth_faces(n: int = 6) -> list[dict]:
    from occau.data.synthfacs import GENERATED_AUS, render_face
    from occau.data.synthfacs.identity import sample_identity

    rng = np.random.default_rng(0)
    return [{"image": render_face(sample_identity(np.random.default_rng(i)), rng.uniform(0, 2, len(GENERATED_AUS)), 64),
             "labels": (rng.random(12) < 0.4).astype(np.float32), "label_mask": np.ones(12, bool),
             "intensity": np.zeros(12, np.float32), "subject": f"S{i}", "sequence": "T1", "frame": i}
            for i in range(n)]


@pytest.fixture(scope="module")
def methods() -> MethodSet:
    torch.manual_seed(0)
    mae = MaskedAutoencoderViT(MAEConfig(img_size=64, patch_size=8, embed_dim=48, depth=2, num_heads=4,
                                         decoder_embed_dim=32, decoder_depth=1, decoder_num_heads=4))
    teacher = MEGraphAU(MEGraphAUConfig(backbone="resnet18", num_aus=12, stage=2, img_size=64))
    student = LatentStudent(StudentConfig(embed_dim=48, num_patches=64, dim=128, num_heads=4, spatial_maps=2))
    student.init_from_teacher(teacher.state_dict())
    return MethodSet([TeacherOnOccluded("teacher", teacher), ReconstructThenTeacher("recon", mae, teacher),
                      StudentsOnVisible(mae, {"student": student})], patch_size=8)


def test_an_estimate_equal_to_the_given_mask_changes_nothing(methods):
    faces = synth_faces()
    given = evaluate_conditions(methods, faces, CONDITIONS, 12, batch_size=6, progress=False)
    tensors = {c: [FaceTensors(faces, patch_size=8, condition=c)[i] for i in range(6)] for c in CONDITIONS}
    masks = {c: torch.stack([t["token_mask"] for t in tensors[c]]) for c in CONDITIONS}  # (6, 64) each
    images = {c: torch.stack([t["image"] for t in tensors[c]]) for c in CONDITIONS}

    def knows(batch: torch.Tensor, patch_size: int) -> torch.Tensor:  # an oracle: the protocol's own mask
        return next(masks[c] for c in CONDITIONS if torch.equal(images[c], batch))

    estimated = evaluate_conditions(methods, faces, CONDITIONS, 12, batch_size=6, progress=False, estimate=knows)
    assert set(estimated) == {"recon", "student", ESTIMATE_KEY}  # the teacher reads pixels only: left out
    for name in ("recon", "student"):
        for c in CONDITIONS:
            assert estimated[name][c]["f1_per_au"] == given[name][c]["f1_per_au"]
    for c in CONDITIONS:
        tp, fp, fn, total = estimated[ESTIMATE_KEY][c]
        assert fp == fn == 0 and tp == int(masks[c].sum()) and total == 6 * 64


def test_no_mask_sees_every_token_and_the_axis_merges_over_folds(methods):
    faces = synth_faces()
    none = lambda images, p: torch.zeros(len(images), (64 // p) ** 2, dtype=torch.bool)  # noqa: E731
    fold = evaluate_conditions(methods, faces, CONDITIONS, 12, batch_size=6, progress=False, estimate=none)
    clean = evaluate_conditions(methods, faces, ["clean"], 12, batch_size=6, progress=False)
    assert fold["student"]["clean"]["f1_per_au"] == clean["student"]["clean"]["f1_per_au"]
    per_fold = {1: {"unknown_occlusion": {"none": fold}}, 2: {"unknown_occlusion": {"none": fold}}}
    merged = unknown_occlusion_over_folds(per_fold, EvalConfig(mask_estimates=("none",)))["unknown_occlusion"]
    assert merged["estimator"] == "shipped" and set(merged["results"]["none"]) == {"recon", "student"}
    assert merged["tokens"]["none"]["patch50"]["recall"] == 0.0
    assert merged["tokens"]["none"]["clean"]["false_cover"] == 0.0


def test_token_scores_by_hand():
    judged = torch.tensor([[True, True, False, False]])
    truth = torch.tensor([[True, False, True, False]])
    counts = token_counts(judged, truth)
    assert counts.tolist() == [1, 1, 1, 4]
    scores = token_scores(counts)
    assert scores == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "false_cover": 0.25}
    assert np.isnan(token_scores([0, 0, 0, 4])["recall"])


def test_unknown_estimate_names_fail_when_the_config_is_read():
    with pytest.raises(ValueError, match="eval.mask_estimates: unknown \\['oracle'\\]"):
        EvalConfig(mask_estimates=("learnt", "oracle"))


def test_the_axis_is_left_out_when_no_method_takes_a_mask(tmp_path):
    """Teachers alone: nothing to re-run, so no 'unknown_occlusion' section (and no empty table or plot)."""
    from occau.checkpoints.io import save_checkpoint
    from occau.checkpoints.megraphau import megraphau_meta
    from occau.data.config import DataConfig
    from occau.evaluation.evaluate import evaluate_fold

    torch.manual_seed(0)
    config = MEGraphAUConfig(backbone="resnet18", num_aus=12, stage=2, img_size=64)
    path = save_checkpoint(tmp_path / "teacher.safetensors", MEGraphAU(config).state_dict(),
                           megraphau_meta(config) | {"license": "test", "aus": [1, 2, 4, 6, 7, 10, 12, 14, 15, 17,
                                                                                23, 24]})
    data = DataConfig(preset="smoke", cache_dir=str(tmp_path / "cache"), patch_size=8)
    settings = EvalConfig(stride=8, mask_estimates=("none",))
    fold = evaluate_fold({"teacher": f"teacher:{path}"}, data, ["clean"], settings, log=lambda m: None, timed=False)
    assert "unknown_occlusion" not in fold
    assert unknown_occlusion_over_folds({1: fold}, settings) == {}
