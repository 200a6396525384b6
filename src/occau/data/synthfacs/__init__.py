"""SynthFACS: procedural AU-labelled faces standing in for BP4D and DISFA (requirements: docs/synthfacs.md).

``identity`` draws subjects, ``expressions`` AU sequences, ``render`` the faces, ``dataset`` serves them to torch;
``occau.reports.datasheet`` proves they are fit for purpose.
"""

from occau.data.synthfacs.dataset import (
    PRESETS,
    VARIANTS,
    SynthFACS,
    SynthFACSConfig,
    SynthFACSGenerator,
    all_subjects,
    render_cache,
    split_subjects,
    synthfacs_config,
)
from occau.data.synthfacs.render import GENERATED_AUS, FrameNuisance, render_face

__all__ = [
    "GENERATED_AUS",
    "PRESETS",
    "VARIANTS",
    "FrameNuisance",
    "SynthFACS",
    "SynthFACSConfig",
    "SynthFACSGenerator",
    "all_subjects",
    "render_cache",
    "render_face",
    "split_subjects",
    "synthfacs_config",
]
