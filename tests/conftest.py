"""Shared test set-up: the reference fixtures produced by the official MAE and ME-GraphAU code."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
REFERENCE_DIR = REPO_ROOT.parent / "shared" / "fixtures" / "reference"

torch.set_num_threads(1)  # tests are small: one thread avoids oversubscription on small CI machines


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``shared/fixtures/reference`` beside the repository, as CI lays it out."""
    if not REFERENCE_DIR.is_dir():
        pytest.fail(f"reference fixtures not found at {REFERENCE_DIR}; shared/ must sit beside the repository")
    return REFERENCE_DIR
