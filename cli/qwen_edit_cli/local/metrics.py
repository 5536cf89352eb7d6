"""The local stack's metrics: what the functions would send to CloudWatch, kept in memory and
summed up when the stack stops (there is no CloudWatch here to graph the EMF lines)."""

from __future__ import annotations

import statistics
import threading
from collections import defaultdict

Key = tuple[str, tuple[tuple[str, str], ...]]  # metric name, sorted dimensions


class TallyMetrics:
    """The Metrics port, in memory and safe across the stack's threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: dict[Key, float] = defaultdict(float)
        self.samples: dict[Key, int] = defaultdict(int)
        self.timings: dict[Key, list[float]] = defaultdict(list)

    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        with self._lock:
            key = (name, tuple(sorted(dimensions.items())))
            self.counts[key] += value
            self.samples[key] += 1

    def seconds(self, name: str, value: float, **dimensions: str) -> None:
        with self._lock:
            self.timings[(name, tuple(sorted(dimensions.items())))].append(value)

    def summary(self) -> str:
        with self._lock:
            counts, samples = dict(self.counts), dict(self.samples)
            timings = {key: list(values) for key, values in self.timings.items()}
        if not counts and not timings:
            return "metrics: none written"
        lines = ["metrics (namespace qwen-edit, as the dashboard would sum them)"]
        for key, total in sorted(counts.items()):
            # A metric with values other than 1 (ProviderCallFailed's 0s, PollsPerJob).
            n = samples[key]
            of = f" in {n} data point{'s' if n > 1 else ''}" if total != n else ""
            lines.append(f"  {key[0]:<20} {_dims(key[1]):<58} {total:g}{of}")
        for (name, dims), values in sorted(timings.items()):
            median, top = statistics.median(values), max(values)
            lines.append(
                f"  {name:<20} {_dims(dims):<58} n={len(values)} p50={median:.1f} s max={top:.1f} s"
            )
        return "\n".join(lines)


def _dims(dims: tuple[tuple[str, str], ...]) -> str:
    return " ".join(f"{key}={value}" for key, value in dims) or "-"
