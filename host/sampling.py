"""Sampling the next token from the device's logits (temperature, top-k), reproducibly.

The rule, so that another implementation can reproduce a run token for token:

1. ``z = logits / temperature`` (float64);
2. with ``top_k``: keep the ``top_k`` largest entries of ``z`` (ties at the boundary: the lower
   token ids win), the rest get probability 0;
3. ``p = exp(z - max z)`` over the kept entries, normalised;
4. ``u`` is the next ``numpy.random.Generator(PCG64(seed)).random()``; the token is the lowest id
   ``i`` whose cumulative probability ``p[0] + ... + p[i]`` exceeds ``u``.

Temperature 0 (or none) is greedy: the CLI then lets the device generate on its own (GENERATE).
"""

from __future__ import annotations

import numpy as np

__all__ = ["Sampler"]


class Sampler:
    def __init__(self, temperature: float, top_k: int | None = None, seed: int | None = None):
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(f"the temperature must be a positive number to sample, got {temperature!r}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top-k must be >= 1, got {top_k}")
        self.temperature, self.top_k, self.seed = float(temperature), top_k, seed
        self.rng = np.random.Generator(np.random.PCG64(seed))

    def probabilities(self, logits) -> np.ndarray:
        z = np.asarray(logits, np.float64) / self.temperature
        # a NaN logit (a broken device) must not poison the draw: it can never be chosen
        z = np.where(np.isnan(z), -np.inf, z)
        keep = np.ones(z.shape, bool)
        if self.top_k is not None and self.top_k < z.size:
            # a stable sort on -z puts equal values in token order, so lower ids win ties
            keep[:] = False
            keep[np.argsort(-z, kind="stable")[:self.top_k]] = True
        top = z[keep].max()
        if not np.isfinite(top):
            raise ValueError("the logits have no finite value to sample from")
        p = np.where(keep, np.exp(z - top), 0.0)
        return p / p.sum()

    def __call__(self, logits) -> int:
        p = self.probabilities(logits)
        cdf = np.cumsum(p)
        u = self.rng.random()
        i = int(np.searchsorted(cdf, u, side="right"))  # the first id with cdf > u
        # cdf[-1] can round to just below 1 and u land above it: the last possible token takes it
        return i if i < p.size else int(np.flatnonzero(p)[-1])
