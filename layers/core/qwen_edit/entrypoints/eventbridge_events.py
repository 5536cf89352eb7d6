"""EventBridge events (as the intake queue carries them: the event itself is the message body)
into the intake use case's RequestEvent."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent

from qwen_edit.domain.intake import RequestEvent


def from_queued_event(body: dict[str, Any]) -> RequestEvent:
    """The event in an intake message. A body that is not an EventBridge event raises
    (KeyError): only the rule sends to the queue, so it is no client's mistake to answer;
    SQS retries it, then keeps it in the dead-letter queue, where the alarm points."""
    event = EventBridgeEvent(body)
    return RequestEvent(
        id=event.get_id, source=event.source, detail_type=event.detail_type, detail=event.detail
    )
