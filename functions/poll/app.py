"""Workflow task: poll (see qwen_edit.app.workflow.poll and statemachine/job.asl.json)."""

from qwen_edit.app import workflow
from qwen_edit.entrypoints.lambda_handlers import workflow_task

handler = workflow_task("poll", workflow.poll, workflow.WorkflowState)
