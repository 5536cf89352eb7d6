"""The `qwen-edit` command: client commands against any deployment, and the local side
(the DashScope emulator, the offline local stack and its demo)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from qwen_edit_cli import admin
from qwen_edit_cli.client import RETRIES_ON_429, ApiError, QwenEditClient
from qwen_edit_cli.emulator.faults import Faults

EXIT_CODES = {401: 3, 402: 10, 403: 3, 404: 4, 409: 5, 413: 6, 422: 6, 429: 7}
EXIT_JOB_DID_NOT_SUCCEED, EXIT_SERVICE = 1, 8
EXIT_FORCED_STOP = 9  # `local serve` or `fake-dashscope` did not stop in time
SHUTDOWN_GRACE_SECONDS = 10


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except ApiError as error:
        _say_error(error, getattr(args, "json", False))
        return EXIT_CODES.get(error.status or 0, EXIT_SERVICE)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qwen-edit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def client_options(command: argparse.ArgumentParser) -> None:
        command.add_argument(
            "--api-url",
            default=os.environ.get("QWEN_EDIT_API_URL"),
            help="the deployment's API URL, ending in /v1 (QWEN_EDIT_API_URL)",
        )
        command.add_argument(
            "--api-key",
            default=os.environ.get("QWEN_EDIT_API_KEY"),
            help="your API key (QWEN_EDIT_API_KEY)",
        )
        command.add_argument("--json", action="store_true", help="print JSON for scripts")

    def job_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("-p", "--prompt", required=True)
        command.add_argument("--model")
        command.add_argument("-n", type=int)
        command.add_argument("--size", help="width*height, e.g. 1024*1536")
        command.add_argument("--seed", type=int)
        command.add_argument("--negative-prompt")
        command.add_argument("--no-prompt-extend", action="store_true")
        command.add_argument("--watermark", action="store_true")
        command.add_argument("--webhook-url")
        command.add_argument(
            "--webhook-events",
            type=lambda text: text.split(","),
            help="the statuses the webhook announces, comma-separated, of queued, running, "
            "succeeded, failed, canceled (default: the last three)",
        )
        deadline = command.add_mutually_exclusive_group()
        deadline.add_argument(
            "--deadline", help="RFC 3339 time: not started at the provider by then, canceled"
        )
        deadline.add_argument(
            "--cancel-after", type=int, help="the same deadline, in seconds from now"
        )
        command.add_argument(
            "--then",
            action="append",
            type=_chain_step,
            help="a further edit of the previous step's output, in the same job (repeat for "
            "more, at most 4): a prompt, or a JSON step such as "
            '\'{"prompt": "add a caption", "model": "qwen-image-edit-max", "n": 2}\'',
        )
        command.add_argument("--idempotency-key")
        command.add_argument(
            "--correlation-id", help="your own id: the job's events and webhooks carry it"
        )
        command.add_argument("--out", type=Path, default=Path("."), help="where to save outputs")
        command.add_argument("--no-wait", action="store_true", help="submit and return")
        client_options(command)

    edit = commands.add_parser("edit", help="edit images (local files are uploaded first)")
    edit.add_argument("images", nargs="+", help="local files, http(s) URLs or s3:// references")
    job_options(edit)
    edit.set_defaults(run=_submit, kind="edits")
    generate = commands.add_parser("generate", help="generate images from text")
    job_options(generate)
    generate.set_defaults(run=_submit, kind="generations", images=[])

    jobs = commands.add_parser("jobs", help="your jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    get = jobs_commands.add_parser("get", help="one job")
    get.add_argument("job_id")
    client_options(get)
    get.set_defaults(run=lambda a: _show(_client(a).get(a.job_id), a.json))
    listing = jobs_commands.add_parser("list", help="your jobs, newest first")
    listing.add_argument("--limit", type=int, default=20)
    listing.add_argument("--cursor")
    listing.add_argument(
        "--status", choices=["queued", "running", "succeeded", "failed", "canceled"]
    )
    client_options(listing)
    listing.set_defaults(run=_list)
    retry = jobs_commands.add_parser(
        "retry", help="a new job from a failed or canceled job's request"
    )
    retry.add_argument("job_id")
    retry.add_argument("--idempotency-key")
    client_options(retry)
    retry.set_defaults(run=lambda a: _show(_client(a).retry(a.job_id, a.idempotency_key), a.json))
    cancel = jobs_commands.add_parser("cancel", help="cancel a job that has not finished")
    cancel.add_argument("job_id")
    client_options(cancel)
    cancel.set_defaults(run=lambda a: _show(_client(a).cancel(a.job_id), a.json))

    usage = commands.add_parser(
        "usage", help="your jobs, images, provider calls and estimated cost over a time range"
    )
    usage.add_argument("--from", dest="start", help="a date or RFC 3339 time (default: to - 7 d)")
    usage.add_argument("--to", dest="end", help="a date or RFC 3339 time, exclusive (default: now)")
    usage.add_argument("--group-by", choices=["day", "model"], default="day")
    client_options(usage)
    usage.set_defaults(run=_usage)

    events = commands.add_parser("events", help="EventBridge events (submit jobs by event)")
    events_commands = events.add_subparsers(dest="events_command", required=True)
    put = events_commands.add_parser(
        "put",
        help="put events on a bus: one event as delivered (source, detail-type, detail) or "
        "put-events entries (Source, DetailType, Detail), one or a list",
    )
    put.add_argument("file", type=Path)
    put.add_argument("--event-bus", default="default", help="the bus (EventBusName)")
    put.add_argument(
        "--ready-file",
        type=Path,
        help="the ready file of `qwen-edit local serve`: put on the local stack's bus",
    )
    put.add_argument("--endpoint-url", help="an EventBridge endpoint (default: AWS's)")
    put.add_argument("--region", help="default: the environment's (AWS_DEFAULT_REGION)")
    put.add_argument("--json", action="store_true", help="one line of JSON")
    put.set_defaults(run=_put_events)

    admin.add_commands(commands)

    fake = commands.add_parser("fake-dashscope", help="run the DashScope emulator on loopback")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8089)
    fake.add_argument("--api-key", help="accept only this bearer key (default: any non-empty)")
    fake.add_argument(
        "--faults",
        type=json.loads,
        default={},
        help="fault injection as JSON, e.g. '{\"throttle_rate\": 0.2}'",
    )
    fake.add_argument("--ready-file", type=Path, help="write {url, api_base_url} here once up")
    fake.add_argument("--verbose", action="store_true", help="log every request")
    fake.set_defaults(run=_fake_dashscope)

    local = commands.add_parser("local", help="the service on this machine, offline")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    serve = local_commands.add_parser("serve", help="emulated AWS, the emulator, the REST API")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=3000, help="the REST API's port (0: any)")
    serve.add_argument("--poll-interval", type=int, default=2, help="seconds between polls")
    serve.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        help="a tenant's key (repeat for more; default: one generated)",
    )
    serve.add_argument(
        "--operator-api-key",
        action="append",
        dest="operator_keys",
        help="a key that acts for the operator: it lists, reads and cancels "
        "upload-triggered jobs (OperatorApiKeyIds)",
    )
    serve.add_argument("--ready-file", type=Path)
    serve.add_argument(
        "--provider",
        choices=["emulator", "dashscope"],
        default="emulator",
        help="dashscope: the real provider, with DASHSCOPE_API_KEY",
    )
    serve.add_argument("--region", choices=["singapore", "beijing"], default="singapore")
    serve.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="template.yaml parameters, as `sam deploy` takes them, e.g. ApiQuotaPerDay=1000 "
        "ApiThrottleRateLimit=50",
    )
    serve.set_defaults(run=_serve)
    demo = local_commands.add_parser("demo", help="the offline demo (what `make demo` runs)")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    demo.add_argument(
        "--serve",
        action="store_true",
        help="after the jobs, keep serving the web console until Ctrl-C (make demo does)",
    )
    demo.set_defaults(run=_demo)

    openapi = commands.add_parser("openapi", help="write the REST API's OpenAPI document")
    openapi.add_argument("--out", type=Path, default=Path("docs/openapi.json"))
    openapi.set_defaults(run=_openapi)
    return parser


# ---- client commands ---------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> QwenEditClient:
    if not args.api_url or not args.api_key:
        raise SystemExit(
            "qwen-edit: give --api-url and --api-key (or QWEN_EDIT_API_URL and QWEN_EDIT_API_KEY)"
        )
    return QwenEditClient(args.api_url, args.api_key, on_wait=_say_wait)


def _say_wait(error: ApiError, seconds: float, retry: int) -> None:
    limit = next((d["limit"] for d in error.details if "limit" in d), None)
    print(
        f"qwen-edit: {error.status} {error.code}{f' ({limit} limit)' if limit else ''}; "
        f"waiting {seconds:g} s as Retry-After says (retry {retry} of {RETRIES_ON_429})",
        file=sys.stderr,
        flush=True,
    )


def _chain_step(text: str) -> dict[str, Any]:
    """A `then` step: a JSON object, or just its prompt."""
    if not text.lstrip().startswith("{"):
        return {"prompt": text}
    try:
        step = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not a JSON step: {error}") from None
    if not isinstance(step, dict):
        raise argparse.ArgumentTypeError("a JSON step is an object")
    return step


def _submit(args: argparse.Namespace) -> int:
    client = _client(args)
    images = [client.upload(Path(i)) if Path(i).is_file() else i for i in args.images]
    body: dict[str, Any] = {
        "prompt": args.prompt,
        "model": args.model,
        "n": args.n,
        "size": args.size,
        "seed": args.seed,
        "negative_prompt": args.negative_prompt,
        "prompt_extend": False if args.no_prompt_extend else None,
        "watermark": True if args.watermark else None,
        "webhook_url": args.webhook_url,
        "webhook_events": args.webhook_events,
        "deadline": args.deadline,
        "cancel_after": args.cancel_after,
        "correlation_id": args.correlation_id,
        "then": args.then,
    }
    body = {k: v for k, v in body.items() if v is not None}
    if images:
        body["images"] = images
    job = client.create(args.kind, body, args.idempotency_key)
    if args.no_wait:
        return _show(job, args.json)
    job = client.wait(job["id"], on_progress=None if args.json else _progress)
    if not args.json:
        print(file=sys.stderr)
    if job["status"] == "succeeded":
        job["saved"] = [str(p) for p in client.download(job, args.out)]
    _show(job, args.json)
    return 0 if job["status"] == "succeeded" else EXIT_JOB_DID_NOT_SUCCEED


_last_status: dict[str, str] = {}  # what _progress last printed, per job


def _progress(job: dict[str, Any], elapsed: float) -> None:
    line = f"{job['id']}  {job['model']}  {job['status']:<9}  {elapsed:6.1f} s{_place(job)}"
    if sys.stderr.isatty():
        print(f"\r{line}", end="", file=sys.stderr, flush=True)
    elif job["status"] != _last_status.get(job["id"]):
        print(line, file=sys.stderr, flush=True)
    _last_status[job["id"]] = job["status"]


def _place(job: dict[str, Any]) -> str:
    """ ", 37th in line, starts in about 18 min" while the job waits for its provider call."""
    queue = job.get("queue")
    if not queue:
        return ""
    start = _when(queue["estimated_start_at"])
    seconds = max(0.0, (start - datetime.now(UTC)).total_seconds())
    about = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"
    return f", {_ordinal(queue['position'])} in line, starts in about {about}"


def _ordinal(number: int) -> str:
    teens = 10 <= number % 100 <= 20
    suffix = "th" if teens else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _show(job: dict[str, Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps(job, indent=2))
        return 0
    print(f"job      {job['id']}\nstatus   {job['status']}\nmodel    {job['model']}")
    if job.get("error"):
        print(f"error    {job['error']['code']}: {job['error']['message']}")
    for path in job.get("saved", []):
        print(f"saved    {path}")
    for step in job.get("steps") or ():
        images = f"{len(step['outputs'])} image(s)" if step["outputs"] else ""
        print(f"step {step['index']}   {step['status']:<9}  {step['model']:<24}  {images}")
    _timeline(job)
    return 0


def _timeline(job: dict[str, Any]) -> None:
    """Each event as seconds after the job was accepted, with what it said."""
    events = job.get("events") or []
    if not events:
        return
    start = _when(job["created_at"])
    print("timeline")
    for event in events:
        polls = f" (poll {event['polls']})" if event.get("polls") else ""
        detail = f"  {event['detail']}" if event.get("detail") else ""
        offset = (_when(event["at"]) - start).total_seconds()
        print(f"  {offset:+8.1f} s  {event['step']:<9}{detail}{polls}")
    if job.get("events_dropped"):
        print(f"  … {job['events_dropped']} later event(s) not kept")


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _list(args: argparse.Namespace) -> int:
    page = _client(args).list(args.limit, args.cursor, args.status)
    if args.json:
        print(json.dumps(page, indent=2))
        return 0
    for job in page["jobs"]:
        print(f"{job['id']}  {job['status']:<9}  {job['model']:<24}  {job['created_at']}")
    if page["next_cursor"]:
        print(f"more: --cursor {page['next_cursor']}")
    return 0


def _usage(args: argparse.Namespace) -> int:
    report = _client(args).usage(args.start, args.end, args.group_by)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    pricing = report["pricing"]
    print(f"usage {report['from']} to {report['to']} (exclusive), by {report['group_by']}")
    statuses = ("queued", "running", "succeeded", "failed", "canceled")
    header = ["", *statuses, "images", "calls", f"cost ({pricing['currency'] or '-'})"]
    rows = [header]
    for name, numbers in [*((g["key"], g) for g in report["groups"]), ("total", report["totals"])]:
        cost = numbers["estimated_cost"]
        rows.append(
            [
                name,
                *(str(numbers["jobs"][status]) for status in statuses),
                str(numbers["images"]),
                str(numbers["provider_calls"]),
                "n/a" if cost is None else f"{cost:.4f}",
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        cells = [cell.rjust(width) for cell, width in zip(row, widths, strict=True)]
        print("  ".join([row[0].ljust(widths[0]), *cells[1:]]))
    print(f"prices: {pricing['source']}")
    if report["unpriced_models"]:
        print(f"no price (cost n/a): {', '.join(report['unpriced_models'])}")
    if report["truncated"]:
        print(f"truncated: counted the jobs created before {report['counted_until']}")
    for cap in report.get("budgets") or ():
        mode = " (observe-only)" if cap["observe_only"] else ""
        print(
            f"cap {cap['period']}{mode}: {cap['spent']:.4f} spent + {cap['reserved']:.4f} "
            f"reserved of {cap['cap']:.4f} {cap['currency'] or ''}, resets {cap['resets_at']}"
        )
    return 0


def _say_error(error: ApiError, as_json: bool) -> None:
    if as_json:
        print(
            json.dumps(
                {
                    "error": {
                        "status": error.status,
                        "code": error.code,
                        "message": error.message,
                        "details": error.details,
                    }
                }
            )
        )
        return
    print(f"qwen-edit: {error.code}: {error.message}", file=sys.stderr)
    for detail in error.details:
        print(f"  {detail.get('field', '')}: {detail.get('message', '')}", file=sys.stderr)


def _put_events(args: argparse.Namespace) -> int:
    from qwen_edit_cli.aws import aws_client
    from qwen_edit_cli.events import entries_of, put_events

    try:
        entries = entries_of(json.loads(args.file.read_text()), args.event_bus)
    except (OSError, ValueError) as error:
        raise SystemExit(f"qwen-edit: {args.file}: {error}") from None
    outcome = put_events(aws_client("events", args), entries)
    print(json.dumps(outcome, indent=2 if not args.json else None))
    return EXIT_SERVICE if outcome["failed"] else 0


# ---- the local side ----------------------------------------------------------------------------


def _until_signalled() -> None:
    """Block until SIGINT or SIGTERM. Stopping never hangs: a second signal, or a shutdown still
    unfinished SHUTDOWN_GRACE_SECONDS later (a handler stuck mid-job), exits at once."""
    stop = threading.Event()

    def on_signal(*_: Any) -> None:
        if stop.is_set():
            _exit_now("second signal")
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, on_signal)
    # A timed wait: the main thread must wake to run the handlers (an untimed wait can sleep
    # through a signal that another, busy thread took).
    while not stop.wait(0.5):
        pass
    watchdog = threading.Timer(
        SHUTDOWN_GRACE_SECONDS, _exit_now, args=(f"shutdown took over {SHUTDOWN_GRACE_SECONDS} s",)
    )
    watchdog.daemon = True
    watchdog.start()


def _exit_now(why: str) -> None:
    print(f"qwen-edit: {why}; exiting now", file=sys.stderr, flush=True)
    os._exit(EXIT_FORCED_STOP)


def _fake_dashscope(args: argparse.Namespace) -> int:
    from qwen_edit_cli.emulator.server import EmulatorServer

    with EmulatorServer(
        args.host,
        args.port,
        api_key=args.api_key,
        faults=Faults.model_validate(args.faults),
        verbose=args.verbose,
    ) as server:
        ready = {
            "url": server.url,
            "api_base_url": server.api_base_url,
            "task_api_base_url": server.task_api_base_url,
        }
        print(json.dumps(ready), flush=True)
        if args.ready_file:
            args.ready_file.write_text(json.dumps(ready))
        _until_signalled()
    return 0


def _serve(args: argparse.Namespace) -> int:
    from qwen_edit_cli.local.serve import announce_ready, local_service

    with local_service(
        host=args.host,
        port=args.port,
        poll_interval=args.poll_interval,
        api_keys=args.api_keys,
        operator_keys=args.operator_keys,
        provider=args.provider,
        region=args.region,
        parameters=dict(_pair(text) for text in args.parameter_overrides),
    ) as ready:
        announce_ready(ready, args.ready_file)
        if dict(_pair(text) for text in args.parameter_overrides).get("Console") != "disabled":
            print(f"web console: {ready.api_url}/console", file=sys.stderr, flush=True)
        _until_signalled()
    return 0


def _pair(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    if not equals or not name:
        raise SystemExit(f"qwen-edit: --parameter-overrides takes NAME=VALUE, not {text!r}")
    return name, value


def _demo(args: argparse.Namespace) -> int:
    from qwen_edit_cli.demo import run_demo

    return run_demo(args.out, serve=args.serve)


def _openapi(args: argparse.Namespace) -> int:
    from qwen_edit_cli.local.lambdas import load_handler
    from qwen_edit_cli.local.template import ROOT

    document = load_handler(ROOT / "functions" / "api", "app.openapi_document")()
    args.out.write_text(json.dumps(json.loads(document), indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
