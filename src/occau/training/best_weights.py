"""``BestWeights``: keep each trained model's weights from its best validation epoch, across a resumed run.

Every supervised stage selects its exported weights on the validation subjects of the training parts (never the
test part). A stage may train several models at once (the student ablations share one encoder and teacher pass), so
the best epoch is kept per model name. The entries ride in the Lightning checkpoint, so a run that resumes after a
crash still exports the best epoch it saw before the crash, not the best since.
"""

from __future__ import annotations

import copy
from typing import Any

from torch import Tensor, nn

BEST_KEY = "occau_best"  # where the entries live in a Lightning checkpoint


class BestWeights:
    """Mixin for a LightningModule with ``trained_models()`` (name -> module)."""

    best: dict[str, dict[str, Any]]  # name -> {"f1": float, "epoch": int, "state": state_dict, **details}

    def trained_models(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def keep_if_best(self, name: str, f1: float, **details: Any) -> None:
        """Copy ``name``'s weights if ``f1`` beats its best so far (a sanity-check pass never counts)."""
        if self.trainer.sanity_checking or (name in self.best and f1 <= self.best[name]["f1"]):
            return
        state = {k: v.detach().cpu().clone() for k, v in self.trained_models()[name].state_dict().items()}
        self.best[name] = {"f1": f1, "epoch": int(self.current_epoch), "state": state, **details}

    def selection(self, entry: dict[str, Any] | None) -> dict[str, Any]:
        """What the exported file says about how its weights were chosen (``None``: no validation ran)."""
        return {"val_f1": None if entry is None else entry["f1"]}

    def best_state(self, name: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
        """The weights with the best validation score (the last weights when there was no validation)."""
        entry = self.best.get(name)
        if entry is not None:
            return entry["state"], {**self.selection(entry), "epoch": entry["epoch"]}
        model = self.trained_models()[name]
        return copy.deepcopy(model.state_dict()), {**self.selection(None), "epoch": int(self.current_epoch)}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[BEST_KEY] = self.best

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self.best = checkpoint.get(BEST_KEY, {})
