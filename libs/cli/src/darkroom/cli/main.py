"""The `darkroom` command: upload to a Darkroom gateway and read what became of every file.

It reads ``DARKROOM_URL`` and ``DARKROOM_API_KEY`` (``make up`` writes both to var/dev.env).
Every command prints a readable answer, or JSON with ``--json``.
"""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from darkroom.cli.client import Gateway, GatewayError
from darkroom.cli.upload import Options, Upload, plan, progress_bars, state_file

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
admin = typer.Typer(help="Projects and keys (a platform-admin key).", no_args_is_help=True)
admin_project = typer.Typer(help="Projects.", no_args_is_help=True)
admin_key = typer.Typer(help="API keys.", no_args_is_help=True)
media = typer.Typer(help="A project's media.", no_args_is_help=True)
people = typer.Typer(help="The people recognised in a project.", no_args_is_help=True)
session = typer.Typer(help="Upload sessions.", no_args_is_help=True)
app.add_typer(admin, name="admin")
admin.add_typer(admin_project, name="project")
admin.add_typer(admin_key, name="key")
app.add_typer(media, name="media")
app.add_typer(people, name="people")
app.add_typer(session, name="session")
console = Console(stderr=True)
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ProjectOption = Annotated[
    str, typer.Option(envvar="DARKROOM_PROJECT", help="The project's id ($DARKROOM_PROJECT).")
]


def _call(method: str, path: str, **kwargs: Any) -> Any:
    try:
        gateway = Gateway()
        try:
            return gateway.call(method, path, **kwargs)
        finally:
            gateway.close()
    except GatewayError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(1) from None


def _show(answer: Any, as_json: bool, columns: tuple[str, ...] = ()) -> None:
    if as_json or not columns:
        print(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    rows = answer if isinstance(answer, list) else [answer]
    table = Table(*columns)
    for row in rows:
        table.add_row(*(_cell(row.get(column)) for column in columns))
    Console().print(table)


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(v["name"] if isinstance(v, dict) else str(v) for v in value)
    return "" if value is None else str(value)


@admin_project.command("create")
def project_create(
    name: str,
    policy: Annotated[str, typer.Option(help="capture or library")],
    ceiling: Annotated[str | None, typer.Option(help="Highest classification accepted.")] = None,
    recipient: Annotated[list[str] | None, typer.Option(help="An e-mail to notify.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a project."""
    body: dict[str, Any] = {"name": name, "policy": policy, "recipient_emails": recipient or []}
    if ceiling:
        body["ceiling"] = ceiling
    _show(_call("POST", "/projects", json=body), as_json, ("id", "name", "policy", "ceiling"))


@admin_key.command("create")
def key_create(
    project: ProjectOption,
    role: Annotated[str, typer.Option(help="uploader, viewer or admin")],
    as_json: JsonFlag = False,
) -> None:
    """Create an API key for a project (shown this once)."""
    _show(
        _call("POST", f"/projects/{project}/keys", json={"role": role}),
        as_json,
        ("id", "role", "key"),
    )


@app.command()
def upload(
    paths: Annotated[list[Path], typer.Argument(exists=True, help="Files and folders.")],
    project: ProjectOption,
    source: Annotated[str, typer.Option(help="Source of upload.")] = "cli",
    view_name: Annotated[
        str | None, typer.Option(help="View name (default: the first path).")
    ] = None,
    capture_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default: today).")] = None,
    ai_tags: Annotated[bool, typer.Option("--ai-tags/--no-ai-tags")] = False,
    classification: Annotated[str | None, typer.Option()] = None,
    retries: Annotated[int, typer.Option(min=0, help="Retries of a failed file.")] = 2,
    no_submit: Annotated[
        bool, typer.Option("--no-submit", help="Leave the sessions open.")
    ] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Return once processing finished.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Upload files and folders (relative paths kept); run it again to resume."""
    options = Options(
        project=project,
        source=source,
        view_name=view_name or paths[0].resolve().name,
        capture_date=capture_date or date.today().isoformat(),
        ai_tagging=ai_tags,
        classification=classification,
        retries=retries,
        submit=not no_submit,
        wait=wait,
    )
    files = plan(paths)
    try:
        gateway = Gateway()
        job = Upload(gateway, options, state_file(project, paths))
        with progress_bars(quiet=as_json or not sys.stderr.isatty()) as progress:
            outcome = job.run(files, progress)
        if wait and options.submit:
            with console.status("processing…"):
                job.wait(outcome.sessions)
        gateway.close()
    except GatewayError as error:
        console.print(f"[red]error:[/red] {error} (run the same command again to resume)")
        raise typer.Exit(1) from None
    summary = {
        "sessions": outcome.sessions,
        "uploaded": outcome.uploaded,
        "skipped_duplicates": outcome.skipped,
        "failed": outcome.failed,
    }
    if as_json:
        print(json.dumps(summary, indent=2, ensure_ascii=False))
        raise typer.Exit(2 if outcome.failed else 0)
    console.print(f"{outcome.uploaded} uploaded in {len(outcome.sessions)} session(s)")
    for path in outcome.skipped:
        console.print(f"  skipped (already in the session): {path}")
    for failed in outcome.failed:
        console.print(f"  [red]failed[/red]: {failed['path']}: {failed['reason']}")
    if outcome.failed:
        raise typer.Exit(2)


@media.command("list")
def media_list(
    project: ProjectOption,
    tag: Annotated[str | None, typer.Option()] = None,
    person: Annotated[str | None, typer.Option()] = None,
    country: Annotated[str | None, typer.Option()] = None,
    status: Annotated[str | None, typer.Option()] = None,
    as_json: JsonFlag = False,
) -> None:
    """A project's media with what was found, every page."""
    query = {
        k: v
        for k, v in {"tag": tag, "person": person, "country": country, "status": status}.items()
        if v
    }
    found: list[dict[str, Any]] = []
    while page := _call(
        "GET",
        f"/projects/{project}/media",
        params={**query, "limit": 500, **({"after": found[-1]["id"]} if found else {})},
    ):
        found += page
        if len(page) < 500:
            break
    for medium in found:
        medium.pop("session_id", None)
    _show(
        found,
        as_json,
        ("id", "path", "status", "captured_at", "country_code", "tags", "duplicate_group"),
    )


@media.command("show")
def media_show(media_id: str, as_json: JsonFlag = False) -> None:
    """One medium in full."""
    _show(_call("GET", f"/media/{media_id}"), True)


@people.command("list")
def people_list(project: ProjectOption, as_json: JsonFlag = False) -> None:
    """The people of a project, with the media they appear in."""
    _show(
        _call("GET", f"/projects/{project}/people"), as_json, ("id", "name", "face_count", "paths")
    )


@people.command("name")
def people_name(person_id: str, name: str, project: ProjectOption) -> None:
    """Name a person: every photo of them, past and future, gets person:<name>."""
    _call("POST", f"/projects/{project}/people/{person_id}/name", json={"name": name})
    console.print("forwarded")


@people.command("merge")
def people_merge(person_id: str, other_id: str, project: ProjectOption) -> None:
    """Merge OTHER_ID into PERSON_ID."""
    _call(
        "POST", f"/projects/{project}/people/{person_id}/merge", json={"other_person_id": other_id}
    )
    console.print("forwarded")


@session.command("show")
def session_show(session_id: str, as_json: JsonFlag = False) -> None:
    """One session: its files and their status."""
    _show(_call("GET", f"/sessions/{session_id}"), True)


@app.command()
def pending(project: ProjectOption, as_json: JsonFlag = False) -> None:
    """A project's sessions not yet submitted."""
    _show(
        _call("GET", f"/projects/{project}/sessions"),
        as_json,
        ("id", "view_name", "progress", "created_at"),
    )


if __name__ == "__main__":
    app()
