"""Workflow task: notify (see qwen_edit.workflow.notify and statemachine/job.asl.json)."""

from qwen_edit import workflow
from qwen_edit.lambda_handlers import workflow_task

handler = workflow_task(workflow.notify)
