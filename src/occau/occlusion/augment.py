"""Training augmentation: each call occludes a face with a condition and fill drawn from a weighted mixture.

It reuses ``occlude``, so training sees exactly the occluders the evaluation uses; the caller's generator supplies
the per-call seed, which keeps data-loader workers reproducible when each worker seeds its own generator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from occau.occlusion.conditions import CONDITIONS, OcclusionResult, occlude
from occau.occlusion.fills import FILLS


def _weights(choices: Mapping[str, float] | Sequence[str], known: tuple[str, ...], what: str):
    """Names and normalised probabilities from a {name: weight} mapping or a sequence (uniform)."""
    items = dict(choices) if isinstance(choices, Mapping) else {name: 1.0 for name in choices}
    unknown = sorted(set(items) - set(known))
    if unknown:
        raise ValueError(f"unknown {what} {unknown}; known: {known}")
    weights = np.array(list(items.values()), dtype=np.float64)
    if not items or (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"{what} weights must be finite, >= 0 and not all zero, got {items}")
    return tuple(items), weights / weights.sum()


class RandomOcclusion:
    """A weighted mixture of occlusion conditions and fills, e.g. ``RandomOcclusion({"clean": 1, "patch50": 2})``."""

    def __init__(
        self,
        conditions: Mapping[str, float] | Sequence[str],
        fills: Mapping[str, float] | Sequence[str] = ("black",),
        patch_size: int | None = None,  # None: the standard grid of each crop's size
        mean_color: tuple[int, int, int] | None = None,
    ) -> None:
        self.conditions, self.condition_p = _weights(conditions, CONDITIONS, "conditions")
        self.fills, self.fill_p = _weights(fills, FILLS, "fills")
        self.patch_size = patch_size
        self.mean_color = mean_color

    def sample(self, rng: np.random.Generator) -> tuple[str, str, int]:
        """(condition, fill, seed) of one draw; ``__call__`` uses exactly this draw."""
        condition = self.conditions[rng.choice(len(self.conditions), p=self.condition_p)]
        fill = self.fills[rng.choice(len(self.fills), p=self.fill_p)]
        return condition, fill, int(rng.integers(0, 2**63 - 1))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> OcclusionResult:
        condition, fill, seed = self.sample(rng)
        return occlude(
            image,
            condition,
            sample_key="augment",
            seed=seed,
            patch_size=self.patch_size,
            fill=fill,
            mean_color=self.mean_color,
        )

    def __repr__(self) -> str:
        conds = ", ".join(f"{c}: {p:.3g}" for c, p in zip(self.conditions, self.condition_p))
        fills = ", ".join(f"{f}: {p:.3g}" for f, p in zip(self.fills, self.fill_p))
        return f"RandomOcclusion(conditions={{{conds}}}, fills={{{fills}}}, patch_size={self.patch_size})"
