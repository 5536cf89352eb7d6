"""The metrics adapter writes CloudWatch embedded-metric-format lines: namespace qwen-edit, the
value and unit, and the dimensions, one line per data point."""

from __future__ import annotations

import json

from qwen_edit.adapters.metrics import NAMESPACE, EmfMetrics


def test_each_data_point_is_one_emf_line(capsys, monkeypatch):
    monkeypatch.delenv("POWERTOOLS_METRICS_DISABLED", raising=False)
    metrics = EmfMetrics()
    metrics.count("JobsAccepted", Family="qwen-image-edit-plus", Source="api")
    metrics.seconds("EndToEndSeconds", 12.5, Family="qwen-image-edit-plus")
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    [directive] = first["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE == "qwen-edit"
    assert directive["Metrics"] == [{"Name": "JobsAccepted", "Unit": "Count"}]
    assert set(directive["Dimensions"][0]) >= {"Family", "Source"}
    assert (first["JobsAccepted"], first["Family"], first["Source"]) == (
        [1.0],
        "qwen-image-edit-plus",
        "api",
    )
    assert second["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] == "Seconds"
    assert second["EndToEndSeconds"] == [12.5]


def test_metrics_can_be_switched_off(capsys, monkeypatch):
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    EmfMetrics().count("JobsAccepted", Family="qwen-image-edit-plus", Source="api")
    assert capsys.readouterr().out == ""
