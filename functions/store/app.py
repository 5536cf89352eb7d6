"""Workflow task: store (see qwen_edit.app.workflow.store and statemachine/job.asl.json)."""

from qwen_edit.app import workflow
from qwen_edit.entrypoints.lambda_handlers import workflow_task

handler = workflow_task("store", workflow.store, workflow.WorkflowState)
