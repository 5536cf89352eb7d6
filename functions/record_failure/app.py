"""Workflow task: record failure (see qwen_edit.app.workflow.record_failure and
statemachine/job.asl.json)."""

from qwen_edit.entrypoints.startup import imports_without_gc

with imports_without_gc():  # cold start: see qwen_edit/entrypoints/startup.py
    from qwen_edit.app import workflow
    from qwen_edit.entrypoints.lambda_handlers import workflow_task

handler = workflow_task("record_failure", workflow.record_failure, workflow.WorkflowState)
