"""`qwen-edit events put`: what a file of events becomes (PutEvents entries, 10 a call)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from qwen_edit_cli.events import entries_of, put_events

SAMPLE = Path(__file__).resolve().parents[2] / "events" / "edit-requested.json"


def test_an_event_as_delivered_becomes_its_entry_on_the_bus() -> None:
    event = json.loads(SAMPLE.read_text())
    [entry] = entries_of(event, "default")
    assert entry == {
        "Source": event["source"],
        "DetailType": "Edit Requested",
        "Detail": json.dumps(event["detail"]),
        "EventBusName": "default",
    }


def test_put_events_entries_are_taken_as_they_are() -> None:
    entries = [
        {"Source": "a.b", "DetailType": "Edit Requested", "Detail": '{"prompt": "x"}'},
        {"Source": "a.b", "DetailType": "Generation Requested", "Detail": {"prompt": "y"}},
        {"Source": "a.b", "DetailType": "Edit Requested", "Detail": "{}", "EventBusName": "b"},
    ]
    first, second, third = entries_of(entries, "pipelines")
    assert first["Detail"] == '{"prompt": "x"}' and first["EventBusName"] == "pipelines"
    assert json.loads(second["Detail"]) == {"prompt": "y"}
    assert third["EventBusName"] == "b"


@pytest.mark.parametrize("document", [[1], {"detail": {}}, "text"])
def test_anything_else_is_refused(document: Any) -> None:
    with pytest.raises(ValueError, match="event 0"):
        entries_of(document, "default")


class FakeEventBridge:
    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # boto3's name
        self.calls.append(Entries)
        return {
            "Entries": [
                {"EventId": f"id-{e['Detail']}"}
                if e["Source"] != "bad"
                else {"ErrorCode": "InvalidArgument", "ErrorMessage": "no"}
                for e in Entries
            ]
        }


def test_entries_go_ten_a_call_and_refusals_are_named() -> None:
    client = FakeEventBridge()
    entries = entries_of(
        [
            {"Source": "bad" if i == 11 else "a.b", "DetailType": "x", "Detail": str(i)}
            for i in range(12)
        ],
        "default",
    )
    outcome = put_events(client, entries)
    assert [len(call) for call in client.calls] == [10, 2]
    assert len(outcome["event_ids"]) == 11
    assert outcome["failed"] == [
        {"source": "bad", "detail_type": "x", "error": "InvalidArgument: no"}
    ]
