"""``BestWeights``: each trained model exports the weights of its best validation epoch, also after a resume."""

from __future__ import annotations

from types import SimpleNamespace

import torch
from torch import nn

from occau.training.best_weights import BEST_KEY, BestWeights


class TwoModels(BestWeights, nn.Module):
    """Two trained models under one module, as the student stage's ablations are; a stand-in trainer."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(2, 1), nn.Linear(2, 1)
        self.best = {}
        self.trainer = SimpleNamespace(sanity_checking=False)
        self.current_epoch = 0

    def trained_models(self) -> dict[str, nn.Module]:
        return {"a": self.a, "b": self.b}


def epoch(module: TwoModels, number: int, scores: dict[str, float], sanity: bool = False) -> None:
    """One validation epoch: every weight set to the epoch number, then each model's score offered."""
    module.current_epoch, module.trainer.sanity_checking = number, sanity
    with torch.no_grad():
        for p in module.parameters():
            p.fill_(float(number))
    for name, f1 in scores.items():
        module.keep_if_best(name, f1)


def test_each_model_keeps_its_own_best_epoch_and_a_copy_of_its_weights():
    m = TwoModels()
    epoch(m, 9, {"a": 0.9, "b": 0.9}, sanity=True)  # Lightning's sanity pass: never a candidate
    assert m.best == {}
    epoch(m, 1, {"a": 0.5, "b": 0.3})
    epoch(m, 2, {"a": 0.4, "b": 0.6})
    epoch(m, 3, {"a": 0.5, "b": 0.2})  # a tie does not replace the earlier epoch
    state_a, info_a = m.best_state("a")
    state_b, info_b = m.best_state("b")
    assert info_a == {"val_f1": 0.5, "epoch": 1} and info_b == {"val_f1": 0.6, "epoch": 2}
    assert (state_a["weight"] == 1).all() and (state_b["weight"] == 2).all()  # not the live weights (3)


def test_the_best_survives_a_checkpoint_round_trip():
    m = TwoModels()
    epoch(m, 1, {"a": 0.7})
    checkpoint: dict = {}
    m.on_save_checkpoint(checkpoint)
    resumed = TwoModels()
    resumed.on_load_checkpoint(checkpoint)
    epoch(resumed, 2, {"a": 0.6})  # worse than before the crash: the pre-crash epoch stays
    state, info = resumed.best_state("a")
    assert BEST_KEY in checkpoint and info == {"val_f1": 0.7, "epoch": 1} and (state["bias"] == 1).all()


def test_without_validation_the_last_weights_are_exported():
    m = TwoModels()
    epoch(m, 4, {})
    state, info = m.best_state("b")
    assert info == {"val_f1": None, "epoch": 4} and (state["weight"] == 4).all()
