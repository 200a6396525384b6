"""Evaluation: per-AU F1 under the occlusion protocol, across methods, conditions and folds."""
