"""What a measurement ran on: the software (occau version and commit, torch, Python) and the machine, stored
with every results file so a timing or a score can be traced to where it came from."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from occau import __version__


def software_info() -> dict[str, Any]:
    return {"occau": __version__, "git_commit": _git_commit(), "torch": torch.__version__,
            "python": platform.python_version()}


def machine_info() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.machine(), "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "cuda": torch.cuda.is_available()}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
