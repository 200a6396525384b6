"""The application behind ``occau detect``: AU probabilities, presence and per-AU visibility for faces in photos and
videos, from a trained checkpoint.

``Detector(checkpoint).detect(inputs)`` returns a pandas DataFrame (columns: ``occau.inference.writer.result_columns``)
and can write it row by row to a CSV; see docs/detect.md.
"""

from occau.data.images import InputError
from occau.inference.detector import OCCLUSION_MODES, Detector, StageTimes
from occau.inference.writer import failures_path, result_columns

__all__ = ["OCCLUSION_MODES", "Detector", "InputError", "StageTimes", "failures_path", "result_columns"]
