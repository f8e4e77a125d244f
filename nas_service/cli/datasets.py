"""`nas datasets upload/list/rm`: a user's datasets on a server (`nas serve`), over its REST API.

The server and its token come from `--server`/`--token` or `NAS_SERVER_URL`/`NAS_TOKEN`. Uploads stream the
file; nothing is held whole in memory.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Annotated, Any, BinaryIO

import typer
from rich.table import Table

from nas_service.cli.output import make_console

datasets_app = typer.Typer(help="Your datasets on a server: upload, list, remove (jobs name them upload:ID).",
                           no_args_is_help=True)
ServerOpt = Annotated[str, typer.Option("--server", envvar="NAS_SERVER_URL", help="The server's base URL.")]
TokenOpt = Annotated[str, typer.Option("--token", envvar="NAS_TOKEN", help="An API token (`nas tokens create`).")]
DEFAULT_SERVER = "http://127.0.0.1:8000"


class ServerError(RuntimeError):
    """The server refused a request or could not be reached; the message is the server's own reason."""


def call(server: str, token: str, method: str, path: str, body: BinaryIO | None = None, size: int = 0) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers |= {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
    request = urllib.request.Request(f"{server.rstrip('/')}/api/v1{path}", data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            text = response.read()
    except urllib.error.HTTPError as exc:
        raise ServerError(f"{method} {path}: {exc.code} {_reason(exc.read())}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise ServerError(f"cannot reach the server at {server} ({getattr(exc, 'reason', exc)}): start `nas serve` "
                          "or give --server / NAS_SERVER_URL") from None
    return json.loads(text) if text else None


def _reason(body: bytes) -> str:
    try:
        detail = json.loads(body).get("detail")
    except (ValueError, AttributeError):
        return body.decode("utf-8", "replace")[:300]
    if isinstance(detail, list):
        return "; ".join(str(d.get("msg", d)) for d in detail)
    return str(detail)


@datasets_app.command("upload")
def upload(file: Annotated[Path, typer.Argument(help="A .npz file or a .zip of one folder of images per class.")],
           server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = "") -> None:
    """Upload FILE; prints its id (name it `upload:ID` in a job's spec)."""
    if not file.is_file():
        raise typer.BadParameter(f"{file} is not a file: expected a .npz or a .zip of class folders")
    query = urllib.parse.urlencode({"name": file.name})
    with open(file, "rb") as body:
        made = call(server, token, "POST", f"/datasets?{query}", body, file.stat().st_size)
    make_console().print(f"dataset {made['id']} ({made['name']}): {made['num_classes']} classes, train "
                         f"{made['train_shape']}, test {made['test_shape']}, {made['size']} bytes; "
                         f"use it as dataset upload:{made['id']}", highlight=False)


@datasets_app.command("list")
def list_cmd(server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = "",
             as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Your uploaded datasets."""
    items = call(server, token, "GET", "/datasets")
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    table = Table("id", "name", "classes", "train", "test", "bytes", "sha256")
    for d in items:
        table.add_row(str(d["id"]), d["name"], str(d["num_classes"]), "x".join(map(str, d["train_shape"])),
                      "x".join(map(str, d["test_shape"])), str(d["size"]), d["sha256"][:12])
    make_console().print(table)


@datasets_app.command("rm")
def rm(dataset: Annotated[int, typer.Argument(help="The dataset's id.")],
       server: ServerOpt = DEFAULT_SERVER, token: TokenOpt = "") -> None:
    """Delete one of your datasets (refused while a queued or running job uses it)."""
    call(server, token, "DELETE", f"/datasets/{dataset}")
    make_console().print(f"deleted dataset {dataset}", highlight=False)
