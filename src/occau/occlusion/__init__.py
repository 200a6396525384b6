"""Occlusion conditions of the evaluation protocol, as test-time transforms and training augmentation."""
