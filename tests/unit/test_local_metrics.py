"""The local stack's metrics tally: summed as the dashboard would, shown when it stops."""

from __future__ import annotations

from qwen_edit_cli.local.metrics import TallyMetrics


def test_counts_sum_by_dimensions_and_timings_show_their_spread() -> None:
    tally = TallyMetrics()
    tally.count("JobsAccepted", Family="qwen-image-plus", Source="api")
    tally.count("JobsAccepted", Source="api", Family="qwen-image-plus")  # order does not matter
    for failed in (0, 1, 0, 0):
        tally.count("ProviderCallFailed", failed)
    for seconds in (1.0, 2.0, 9.0):
        tally.seconds("EndToEndSeconds", seconds, Family="qwen-image-plus")
    lines = tally.summary().splitlines()
    assert lines[0].startswith("metrics (namespace qwen-edit")
    assert lines[1].split() == ["JobsAccepted", "Family=qwen-image-plus", "Source=api", "2"]
    assert lines[2].split() == ["ProviderCallFailed", "-", "1", "in", "4", "data", "points"]
    assert lines[3].endswith("n=3 p50=2.0 s max=9.0 s")


def test_an_idle_stack_says_so() -> None:
    assert TallyMetrics().summary() == "metrics: none written"
