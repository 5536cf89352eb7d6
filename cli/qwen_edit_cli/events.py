"""`qwen-edit events put`: events on an EventBridge bus, to submit jobs by event (README
"Pipelines"). A file holds one event as EventBridge delivers it (`source`, `detail-type`,
`detail`, as events/edit-requested.json), or `aws events put-events` entries (`Source`,
`DetailType`, `Detail` as JSON text); one, or a list."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

MAX_ENTRIES = 10  # PutEvents takes at most 10 entries a call


def entries_of(document: Any, bus: str) -> list[dict[str, Any]]:
    """PutEvents entries for the events of a file's document, on `bus` unless an entry names
    its own (EventBusName)."""
    items = document if isinstance(document, list) else [document]
    entries = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise ValueError(f"event {index}: an object, not {type(item).__name__}")
        if "Source" in item:  # a put-events entry
            entry = {**item}
            if not isinstance(entry.get("Detail"), str):
                entry["Detail"] = json.dumps(entry.get("Detail", {}))
        elif "source" in item:  # an event as delivered
            entry = {
                "Source": item["source"],
                "DetailType": item.get("detail-type", ""),
                "Detail": json.dumps(item.get("detail", {})),
            }
        else:
            raise ValueError(f"event {index}: neither `source` (an event) nor `Source` (an entry)")
        entry.setdefault("EventBusName", bus)
        entries.append(entry)
    return entries


def batches(entries: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    for start in range(0, len(entries), MAX_ENTRIES):
        yield entries[start : start + MAX_ENTRIES]


def put_events(client: Any, entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Put every entry: the ids EventBridge gave, and the entries it refused with why."""
    ids: list[str] = []
    failed: list[dict[str, Any]] = []
    for batch in batches(entries):
        answer = client.put_events(Entries=batch)
        for entry, result in zip(batch, answer["Entries"], strict=True):
            if "EventId" in result:
                ids.append(result["EventId"])
            else:
                failed.append(
                    {
                        "source": entry["Source"],
                        "detail_type": entry["DetailType"],
                        "error": f"{result.get('ErrorCode')}: {result.get('ErrorMessage')}",
                    }
                )
    return {"event_ids": ids, "failed": failed}
