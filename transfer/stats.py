"""Spread over seeds: mean, sample standard deviation and paired differences with t-intervals (pure functions)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["LEVEL", "PairedDifference", "mean_sd", "paired_difference"]

LEVEL = 0.95  # two-sided confidence level of the paired-difference intervals


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (n - 1 in the denominator); the s.d. is None for a single value."""
    if not values:
        raise ValueError("mean_sd needs at least one value")
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values, xbar=mean) if len(values) > 1 else None)


@dataclass(frozen=True)
class PairedDifference:
    """``row - baseline`` over the seeds both share: mean, its ``LEVEL`` t-interval (None below 2 seeds), seeds."""

    mean: float | None
    low: float | None
    high: float | None
    seeds: tuple[int, ...]

    @property
    def n(self) -> int:
        return len(self.seeds)

    @property
    def excludes_zero(self) -> bool:
        return self.low is not None and self.high is not None and (self.low > 0 or self.high < 0)


def paired_difference(row: Mapping[int, float], baseline: Mapping[int, float], level: float = LEVEL
                      ) -> PairedDifference:
    """Paired difference of two rows' per-seed values (``{seed: value}``) over their shared seeds.

    The same seed gives both runs the same data order and head initialisation, so the per-seed differences are
    paired: mean d, interval d ± t((1 + level) / 2, n - 1) · s_d / sqrt(n) (scipy's Student t quantile).
    """
    from scipy.stats import t

    seeds = tuple(sorted(set(row) & set(baseline)))
    if not seeds:
        return PairedDifference(None, None, None, seeds)
    diffs = [row[s] - baseline[s] for s in seeds]
    mean, sd = mean_sd(diffs)
    if sd is None:
        return PairedDifference(mean, None, None, seeds)
    half = float(t.ppf((1 + level) / 2, len(diffs) - 1)) * sd / math.sqrt(len(diffs))
    return PairedDifference(mean, mean - half, mean + half, seeds)
