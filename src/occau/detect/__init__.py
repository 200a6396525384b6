"""``occau detect``: AU probabilities, presence and per-AU visibility for faces in photos and videos.

``Detector(checkpoint).detect(inputs)`` returns a pandas DataFrame (columns: ``occau.detect.writer.result_columns``)
and can write it row by row to a CSV; see docs/detect.md.
"""

from occau.detect.detector import OCCLUSION_MODES, Detector, StageTimes
from occau.detect.inputs import InputError
from occau.detect.writer import failures_path, result_columns

__all__ = ["OCCLUSION_MODES", "Detector", "InputError", "StageTimes", "failures_path", "result_columns"]
