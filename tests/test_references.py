"""The reference lines (all AUs present, WA-optimal constant) on hand-computed cases, and the per-fold merge."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.utils.data import Subset

from occau.evaluation.evaluate import mean_over_folds, merge_folds, references_over_folds
from occau.evaluation.references import face_labels, fold_references, reference_scores, wa_optimal_constant
from occau.losses.wa import WeightedAsymmetricLoss

# Test part: 4 faces x 3 AUs. AU0: 2 of 4 positive. AU1: 1 of 3 known positive (the 4th label is unknown, and 1).
# AU2: no positive.
TEST_LABELS = np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 1, 0]], dtype=np.float32)
TEST_MASK = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 0, 1]], dtype=bool)
# Training part: 6 faces. Base rates over known labels: AU0 3/6 = 0.5 (present), AU1 1/4 = 0.25 (absent; 3/6 if the
# two unknown labels were counted), AU2 4/6 (present).
TRAIN_LABELS = np.array([[1, 1, 1], [1, 0, 1], [1, 0, 1], [0, 0, 1], [0, 1, 0], [0, 1, 0]], dtype=np.float32)
TRAIN_MASK = np.array([[1, 1, 1]] * 4 + [[1, 0, 1]] * 2, dtype=bool)


class _Faces:
    """A face dataset as far as the references need one: labels of the whole split."""

    def __init__(self, labels: np.ndarray, mask: np.ndarray):
        self.labels, self.mask = labels, mask

    def __len__(self) -> int:
        return len(self.labels)

    def label_arrays(self):
        return self.labels, self.mask, np.full(self.labels.shape, np.nan, np.float32)


def test_wa_optimal_constant_threshold_at_one_third():
    x = wa_optimal_constant(np.array([0.0, 0.2, 1 / 3, 0.5, 1.0]))
    assert x[1] == pytest.approx((math.sqrt(17) - 1) / 8)  # 4x^2 + x - 1 = 0: 0.390, below 0.5 -> never present
    assert x[2] == pytest.approx(0.5)
    assert x[3] == pytest.approx((math.sqrt(5) - 1) / 2)  # x^2 + x - 1 = 0: 0.618 -> always present
    assert x[0] == 0.0 and x[4] == 1.0
    p = 0.3
    assert (1 - p) * wa_optimal_constant(p) ** 2 + p * wa_optimal_constant(p) - p == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError):
        wa_optimal_constant(1.5)


@pytest.mark.parametrize("positives", [1, 2, 3])
def test_wa_optimal_constant_is_where_the_wa_loss_gradient_vanishes(positives):
    """On 5 faces with ``positives`` of them positive, the project's WA loss has zero gradient at x*, pulls a
    constant above x* down and one below it up (with the weight of an AU, which only scales the loss)."""
    labels = torch.tensor([[1.0]] * positives + [[0.0]] * (5 - positives))
    loss = WeightedAsymmetricLoss(torch.tensor([2.5]))
    x_star = float(wa_optimal_constant(positives / 5))

    def grad(x: float) -> float:
        probs = torch.full_like(labels, x, requires_grad=True)
        loss(probs, labels).backward()
        return float(probs.grad.sum())

    assert grad(x_star) == pytest.approx(0, abs=1e-6)
    assert grad(x_star + 0.05) > 0 and grad(x_star - 0.05) < 0


def test_reference_scores_by_hand():
    refs = reference_scores(TEST_LABELS, TEST_MASK, TRAIN_LABELS, TRAIN_MASK)
    # all present: AU0 P 2/4 R 1 -> 2/3; AU1 P 1/3 R 1 -> 1/2 (the unknown positive is not counted); AU2 no TP -> 0
    assert refs["all_present"]["f1_per_au"] == pytest.approx([2 / 3, 1 / 2, 0])
    assert refs["all_present"]["f1_mean"] == pytest.approx(7 / 18)
    # WA constant: AU0 present (2/3), AU1 absent (no predicted positive: 0), AU2 present but no test positive (0)
    assert refs["wa_constant"]["f1_per_au"] == pytest.approx([2 / 3, 0, 0])
    assert refs["wa_constant"]["f1_mean"] == pytest.approx(2 / 9)
    assert refs["wa_constant"]["train_base_rate"] == pytest.approx([1 / 2, 1 / 4, 2 / 3])
    assert [x >= 0.5 for x in refs["wa_constant"]["output"]] == [True, False, True]
    assert refs["all_present"]["n_frames"] == 4


def test_fold_references_follow_a_subset_of_test_faces():
    """The benchmark scores every n-th test face: the references must use the same faces (here faces 0 and 2)."""
    test = Subset(_Faces(TEST_LABELS, TEST_MASK), [0, 2])
    labels, mask = face_labels(test)
    np.testing.assert_array_equal(labels, TEST_LABELS[[0, 2]])
    refs = fold_references(_Faces(TRAIN_LABELS, TRAIN_MASK), test)
    # faces 0, 2: AU0 labels 1, 0 -> all present P 1/2 R 1 -> 2/3; AU1 1, 0 -> 2/3; AU2 none -> 0
    assert refs["all_present"]["f1_per_au"] == pytest.approx([2 / 3, 2 / 3, 0])
    assert refs["all_present"]["n_frames"] == 2


def test_merge_folds_keeps_per_fold_and_per_au():
    cells = {2: {"f1_mean": 0.5, "f1_per_au": [0.4, 0.6], "n_frames": 10},
             1: {"f1_mean": 0.3, "f1_per_au": [0.2, 0.4], "n_frames": 20}}
    merged = merge_folds(cells)
    assert merged["f1_mean"] == pytest.approx(0.4) and merged["f1_per_au"] == pytest.approx([0.3, 0.5])
    assert list(merged["f1_per_fold"]) == ["1", "2"] and merged["f1_per_fold"]["2"] == 0.5
    assert merged["f1_per_au_per_fold"] == {"1": [0.2, 0.4], "2": [0.4, 0.6]}
    assert merged["n_frames"] == 30
    by_method = mean_over_folds({f: {"teacher": {"clean": c}} for f, c in cells.items()})
    assert by_method["teacher"]["clean"] == merged


def test_references_over_folds_keep_the_base_rates_per_fold():
    one = reference_scores(TEST_LABELS, TEST_MASK, TRAIN_LABELS, TRAIN_MASK)
    two = reference_scores(TEST_LABELS[:2], TEST_MASK[:2], TRAIN_LABELS, TRAIN_MASK)  # AU0 2/2 -> 1, AU1 1/2 -> 2/3
    merged = references_over_folds({1: one, 2: two})
    assert merged["all_present"]["f1_per_fold"] == pytest.approx({"1": 7 / 18, "2": 5 / 9})
    assert merged["all_present"]["f1_per_au_per_fold"]["2"] == pytest.approx([1, 2 / 3, 0])
    assert merged["all_present"]["f1_mean"] == pytest.approx((7 / 18 + 5 / 9) / 2)
    assert merged["wa_constant"]["train_base_rate_per_fold"]["2"] == pytest.approx([1 / 2, 1 / 4, 2 / 3])
    assert "train_base_rate_per_fold" not in merged["all_present"]


def test_check_teacher_against_the_published_numbers():
    """A teacher at upstream's per-AU numbers passes; one AU 10 points low fails that AU; a mean 3 points low fails."""
    from occau.aus import dataset_aus
    from occau.evaluation.published import PUBLISHED_F1, check_teacher

    aus = tuple(dataset_aus("bp4d"))
    published = PUBLISHED_F1[("bp4d", "resnet50")]
    assert round(sum(published) / 12, 1) == 64.7  # the README's headline mean
    exact = check_teacher([p / 100 for p in published], "bp4d", "resnet50", aus)
    assert exact.passed and abs(exact.mean_gap) < 1e-9 and "PASS" in exact.table()
    one_off = [p / 100 for p in published]
    one_off[3] -= 0.10
    check = check_teacher(one_off, "bp4d", "resnet50", aus)
    assert not check.passed and check.failing_aus == [aus[3]]
    assert not check_teacher([p / 100 - 0.03 for p in published], "bp4d", "resnet50", aus).passed
    assert round(sum(PUBLISHED_F1[("disfa", "swin_transformer_base")]) / 8, 1) == 62.4
    with pytest.raises(ValueError, match="no published"):
        check_teacher([0.5] * 12, "bp4d", "resnet18", aus)
