"""The stage registry: each stage kind names the Lightning module that builds, trains and describes it.

A stage module offers ``build(config) -> (module, datamodule)`` (models, initial weights, data), the Lightning
hooks that train it (plus ``stage_callbacks(out_dir)``), and for export ``trained_models()``, ``best_state(name)``
and ``checkpoint_meta(name, ...)``.
``train_stage`` (occau.training.run) needs nothing else, so a new kind of training run is one module plus one line
here and one in :data:`occau.training.config.STAGE_KINDS` (its config's model and loss dataclasses).
"""

from __future__ import annotations

import lightning as L

from occau.training.config import STAGE_KINDS
from occau.training.mae_module import MAEModule
from occau.training.occlusion_module import OcclusionModule
from occau.training.student_module import StudentModule
from occau.training.teacher_module import TeacherModule

STAGES: dict[str, type[L.LightningModule]] = {
    "mae": MAEModule,
    "teacher": TeacherModule,
    "student": StudentModule,
    "occlusion": OcclusionModule,
}
assert STAGES.keys() == STAGE_KINDS.keys(), "every stage kind needs a config (STAGE_KINDS) and a module (STAGES)"
