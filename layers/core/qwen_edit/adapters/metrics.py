"""Metrics as CloudWatch embedded-metric-format log lines (Powertools), namespace `qwen-edit`:
one line per data point, written at once, so no handler needs a flush decorator."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

NAMESPACE = "qwen-edit"


class EmfMetrics:
    def count(self, name: str, value: float = 1, **dimensions: str) -> None:
        self._put(name, MetricUnit.Count, value, dimensions)

    def seconds(self, name: str, value: float, **dimensions: str) -> None:
        self._put(name, MetricUnit.Seconds, value, dimensions)

    @staticmethod
    def _put(name: str, unit: MetricUnit, value: float, dimensions: dict[str, str]) -> None:
        if is_metrics_disabled():  # POWERTOOLS_METRICS_DISABLED, which single_metric ignores
            return
        with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
            for key, dimension in dimensions.items():
                metric.add_dimension(name=key, value=dimension)
