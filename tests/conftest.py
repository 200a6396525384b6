"""Shared test set-up: the reference fixtures produced by the official MAE and ME-GraphAU code.

They live in ``tests/fixtures/reference/`` (each folder's ``manifest.json`` says which official files, commit and
inputs produced it), so the suite runs from a clone with nothing beside it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

REFERENCE_DIR = Path(__file__).resolve().parent / "fixtures" / "reference"

torch.set_num_threads(1)  # tests are small: one thread avoids oversubscription on small CI machines


@pytest.fixture(scope="session")
def reference_dir() -> Path:
    """``tests/fixtures/reference``: tensors and lists written by the official code."""
    if not REFERENCE_DIR.is_dir():
        pytest.fail(f"reference fixtures not found at {REFERENCE_DIR}; the checkout is incomplete")
    return REFERENCE_DIR
