"""Workflow task: submit (see qwen_edit.workflow.submit and statemachine/job.asl.json)."""

from qwen_edit import workflow
from qwen_edit.lambda_handlers import workflow_task

handler = workflow_task(workflow.submit)
