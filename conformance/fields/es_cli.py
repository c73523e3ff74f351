"""`d4c es templates [--url URL]`: the index templates of conformance/fields/templates.py,
printed as Kibana Dev Tools requests (or one JSON object), or installed with the official
`elasticsearch` client."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

from conformance.fields.templates import TemplateError, templates

EXIT_REFUSED = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    es = subparsers.add_parser("es", help="Elasticsearch set-up without Fleet: index templates")
    commands = es.add_subparsers(dest="es_command", metavar="SUBCOMMAND", required=True)
    cmd = commands.add_parser(
        "templates",
        help="print, or install with --url, the index templates of the cloud_defend data streams",
        description="Composable index templates (d4c-<stream>, priority 150: above the stack's logs/metrics "
                    "templates, below Fleet's) for logs-cloud_defend.file, .process, .alerts and "
                    "metrics-cloud_defend.heartbeat, .metrics, mapping every field with the type `d4c events "
                    "check` checks it against. Without --url: printed as Kibana Dev Tools requests. "
                    "Exit 0 printed or installed, 1 Elasticsearch unreachable or refused, 2 usage error.",
    )
    cmd.add_argument("--url", metavar="URL", help="install into this Elasticsearch (http[s]://[user:pass@]host:port)")
    cmd.add_argument("--api-key", metavar="KEY", help="with --url: an Elasticsearch API key (encoded form)")
    cmd.add_argument("--ca-certs", metavar="FILE", help="with --url: the CA bundle for https")
    cmd.add_argument("--format", choices=("console", "json"), default="console",
                     help="console: `PUT _index_template/NAME` + body per template (default); json: one object NAME -> body")
    cmd.set_defaults(func=run_templates)


def _print(bodies: dict[str, dict[str, Any]], fmt: str, out: TextIO) -> None:
    if fmt == "json":
        json.dump(bodies, out, indent=2, sort_keys=True)
        out.write("\n")
        return
    for name, body in bodies.items():
        out.write(f"PUT _index_template/{name}\n{json.dumps(body, indent=2, sort_keys=True)}\n\n")


def _client(args: argparse.Namespace) -> Any:
    from elasticsearch import Elasticsearch  # the agent/test extra; needed only with --url

    options: dict[str, Any] = {"request_timeout": 30, "max_retries": 0}
    if args.api_key:
        options["api_key"] = args.api_key
    if args.ca_certs:
        options["ca_certs"] = args.ca_certs
    return Elasticsearch(args.url, **options)


def install(client: Any, bodies: dict[str, dict[str, Any]], out: TextIO) -> None:
    """PUT every template through the client's own API (`_meta` is its `meta` argument)."""
    for name, body in bodies.items():
        client.indices.put_index_template(name=name, **{key.lstrip("_"): value for key, value in body.items()})
        out.write(f"d4c es templates: installed {name} ({', '.join(body['index_patterns'])})\n")


def run_templates(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        bodies = templates()
    except TemplateError as exc:  # the field lists of this checkout contradict each other
        print(f"d4c es templates: {exc}", file=err)
        return EXIT_REFUSED
    if args.url is None:
        if args.api_key or args.ca_certs:
            print("d4c es templates: --api-key and --ca-certs need --url", file=err)
            return 2
        _print(bodies, args.format, out)
        return 0
    try:
        client = _client(args)
    except ImportError:
        print("d4c es templates: --url needs the `elasticsearch` Python client (pip install 'elasticsearch>=8.8,<9')",
              file=err)
        return EXIT_REFUSED
    except ValueError as exc:  # the client refuses the URL itself
        print(f"d4c es templates: {args.url}: {exc}", file=err)
        return 2
    try:
        install(client, bodies, out)
    except Exception as exc:  # connection refused, 401, 400 mapping error: one line, no traceback
        print(f"d4c es templates: {args.url}: {type(exc).__name__}: {_reason(exc)}", file=err)
        return EXIT_REFUSED
    finally:
        client.close()
    return 0


def _reason(exc: Exception) -> str:
    """The server's own reason when it gave one (ApiError.body), else the exception's text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("reason") or body["error"])
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
