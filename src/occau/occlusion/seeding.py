"""Per-sample random streams: the same test image gets the same occlusion for every method, run and machine.

Python's ``hash`` is salted per process, so the seed is a BLAKE2 digest of ``(seed, condition, sample_key, stream)``.
Separate streams keep the geometry of an occlusion independent of its fill: switching ``black`` to ``noise`` moves
no square.
"""

from __future__ import annotations

import hashlib

import numpy as np


def sample_rng(seed: int, condition: str, sample_key: str, stream: str = "geometry") -> np.random.Generator:
    """A generator that depends only on its arguments, in any process or platform.

    numpy may still change how ``Generator`` methods turn bits into draws (NEP 19); the pinned-draw test in
    tests/test_occlusion.py flags such a change.
    """
    text = "\x1f".join((str(int(seed)), condition, sample_key, stream))
    digest = hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(int.from_bytes(digest, "little"))))
