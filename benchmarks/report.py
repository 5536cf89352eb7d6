"""Shared by the benchmark scripts: public prices, statistics, and docs/benchmarks.md, where
each script owns one section (between its markers) and rewrites only that."""

from __future__ import annotations

import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REPORT = ROOT / "docs" / "benchmarks.md"

# us-east-1 list prices (public AWS price pages), arm64 Lambda, on-demand DynamoDB.
PRICES = {
    "state_transition": 0.000025,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0000133334,
    "dynamodb_write": 0.625 / 1e6,
    "dynamodb_read": 0.125 / 1e6,
    "s3_put": 0.005 / 1000,
    "s3_get": 0.0004 / 1000,
    "sqs_request": 0.40 / 1e6,
    "eventbridge_event": 1.00 / 1e6,
    "secrets_manager_call": 0.05 / 10000,
}
# The provider's price per output image is not in the provider's documentation here; this is the figure the share is
# computed against. Pass your own with --price-per-image (Model Studio's pricing page).
DEFAULT_PRICE_PER_IMAGE = 0.03

HEADER = """# Benchmarks

Every figure here is written by a script under `benchmarks/` (`make bench` runs them all, on a
fresh clone, in about 10 minutes on 2 cores). The runs use the local stack: moto for AWS with
the real state machine and handlers, and the DashScope emulator with the provider's own rate
limits. Tests never assert on wall-clock time.
"""


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def write_section(name: str, body: str) -> None:
    """Replace this script's section of docs/benchmarks.md (creating the file if needed)."""
    text = REPORT.read_text() if REPORT.exists() else HEADER
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text:
        before, rest = text.split(begin, 1)
        text = before + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    REPORT.write_text(text)
    print(f"\n(written to {REPORT.relative_to(ROOT)}, section {name})")
