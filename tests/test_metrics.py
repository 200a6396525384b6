"""Per-AU F1: the official reference loop, hand-computed cases and the unknown-label mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from occau.metrics import AUF1, confusion_counts, f1_scores


@pytest.fixture(scope="module")
def f1_ref(reference_dir):
    return load_file(reference_dir / "f1" / "io.safetensors")


def test_metric_matches_official_batch_loop(f1_ref):
    metric = AUF1(num_aus=12)
    for preds, labels in zip(f1_ref["preds"], f1_ref["labels"]):
        metric.update(preds, labels)
    for name in ("tp", "fp", "tn", "fn"):
        assert torch.equal(getattr(metric, name), f1_ref[name.upper()])
    out = metric.compute()
    torch.testing.assert_close(out["f1_per_au"], f1_ref["f1_per_au"], atol=1e-12, rtol=0)
    torch.testing.assert_close(out["f1_mean"], f1_ref["mean_f1"], atol=1e-12, rtol=0)
    torch.testing.assert_close(out["acc_per_au"], f1_ref["acc_per_au"], atol=1e-12, rtol=0)
    torch.testing.assert_close(out["acc_mean"], f1_ref["mean_acc"], atol=1e-12, rtol=0)
    assert out["f1_per_au"][10] == pytest.approx(1.0) and out["f1_per_au"][11] == 0.0


def test_f1_function_matches_official(f1_ref):
    per_au, mean = f1_scores(f1_ref["preds"].reshape(-1, 12), f1_ref["labels"].reshape(-1, 12).numpy())
    assert isinstance(per_au, np.ndarray) and isinstance(mean, float)
    np.testing.assert_allclose(per_au, f1_ref["f1_per_au"].numpy(), atol=1e-12, rtol=0)
    assert mean == pytest.approx(f1_ref["mean_f1"].item(), abs=1e-12)


def test_threshold_is_inclusive():
    tp, fp, tn, fn = confusion_counts(torch.tensor([[0.5], [0.49999997]]), torch.tensor([[0.0], [1.0]]))
    assert (tp.item(), fp.item(), tn.item(), fn.item()) == (0, 1, 0, 1)


def test_hand_computed_f1():
    # AU0: TP 2, FP 1, FN 1 -> P = R = 2/3 -> F1 2/3.  AU1: no positives, none predicted -> 0 (still averaged).
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.2, 0.4]])
    labels = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    per_au, mean = f1_scores(probs, labels)
    np.testing.assert_allclose(per_au, [2 / 3, 0.0], atol=1e-12)
    assert mean == pytest.approx(1 / 3, abs=1e-12)


def test_unknown_labels_are_left_out_per_au(f1_ref):
    probs, labels = f1_ref["preds"].reshape(-1, 12), f1_ref["labels"].reshape(-1, 12)
    mask = torch.ones_like(labels, dtype=torch.bool)
    mask[[0, 5, 11], 3] = False
    coded = labels.clone()
    coded[[0, 5, 11], 3] = 9.0  # BP4D's "unknown" code
    per_au, _ = f1_scores(probs, coded, mask)
    keep = mask[:, 3]
    # The masked AU equals its F1 over the remaining frames; every other AU is untouched.
    expected3, _ = f1_scores(probs[keep][:, 3:4], labels[keep][:, 3:4])
    assert per_au[3] == pytest.approx(expected3[0], abs=1e-12)
    others = [i for i in range(12) if i != 3]
    np.testing.assert_allclose(per_au[others], f1_ref["f1_per_au"].numpy()[others], atol=1e-12, rtol=0)
    metric = AUF1(num_aus=12)
    metric.update(probs, coded, mask)
    assert int(metric.tp[3] + metric.fp[3] + metric.tn[3] + metric.fn[3]) == 15
    assert metric.compute()["f1_per_au"][3].item() == pytest.approx(expected3[0], abs=1e-12)


@pytest.mark.parametrize("bad", [9.0, -1.0])
def test_unmasked_invalid_label_is_a_clear_error(bad):
    labels = torch.zeros(3, 2)
    labels[1, 1] = bad
    with pytest.raises(ValueError, match="frame 1, AU column 1"):
        f1_scores(torch.rand(3, 2), labels)


def test_reset_and_wrong_width():
    metric = AUF1(num_aus=2)
    metric.update(torch.tensor([[0.9, 0.9]]), torch.tensor([[1.0, 1.0]]))
    metric.reset()
    assert int(metric.tp.sum()) == 0
    with pytest.raises(ValueError, match="2 AUs"):
        metric.update(torch.rand(1, 3), torch.zeros(1, 3))
