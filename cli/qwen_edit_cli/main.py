"""The `qwen-edit` command."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

from qwen_edit_cli.emulator.faults import Faults


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qwen-edit", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    fake = commands.add_parser("fake-dashscope", help="run the DashScope emulator on loopback")
    fake.add_argument("--host", default="127.0.0.1")
    fake.add_argument("--port", type=int, default=8089)
    fake.add_argument("--api-key", help="accept only this bearer key (default: any non-empty)")
    fake.add_argument("--faults", type=json.loads, default={},
                      help='fault injection as JSON, e.g. \'{"throttle_rate": 0.2}\'')
    fake.add_argument("--ready-file", type=Path, help="write {url, api_base_url} here once up")
    fake.add_argument("--verbose", action="store_true", help="log every request")
    fake.set_defaults(run=_fake_dashscope)

    local = commands.add_parser("local", help="run the service locally, offline")
    local_commands = local.add_subparsers(dest="local_command", required=True)
    demo = local_commands.add_parser("demo", help="the offline demo (what `make demo` runs)")
    demo.add_argument("--out", type=Path, default=Path("demo-output"))
    demo.add_argument("--poll-interval", type=float, default=1.0)
    demo.set_defaults(run=_demo)

    openapi = commands.add_parser("openapi", help="write the REST API's OpenAPI document")
    openapi.add_argument("--out", type=Path, default=Path("docs/openapi.json"))
    openapi.set_defaults(run=_openapi)

    args = parser.parse_args(argv)
    return args.run(args)


def _fake_dashscope(args: argparse.Namespace) -> int:
    from qwen_edit_cli.emulator.server import EmulatorServer

    server = EmulatorServer(args.host, args.port, api_key=args.api_key,
                            faults=Faults.model_validate(args.faults), verbose=args.verbose)
    ready = {"url": server.url, "api_base_url": server.api_base_url,
             "task_api_base_url": server.task_api_base_url}
    print(json.dumps(ready), flush=True)
    if args.ready_file:
        args.ready_file.write_text(json.dumps(ready))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        server.stop()
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from qwen_edit_cli.local.lambdas import load_handler
    from qwen_edit_cli.local.template import ROOT

    document = load_handler(ROOT / "functions" / "api", "app.openapi_document")()
    args.out.write_text(json.dumps(json.loads(document), indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from qwen_edit_cli.demo import run_demo

    return run_demo(args.out, poll_interval=args.poll_interval)


if __name__ == "__main__":
    sys.exit(main())
