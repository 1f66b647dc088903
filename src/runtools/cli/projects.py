"""``runtools project …``: the current organization's projects.

A project is named by its id or its name on the command line. Projects
group keys and sandboxes (``--project`` on ``auth keys create``); they
change nobody's permissions.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from runtools import Project, RunTools
from runtools.cli.confirm import YesFlag, confirm
from runtools.cli.context import api_errors, client
from runtools.cli.output import EXIT_NOT_FOUND, emit_json, fail, table, when

app = typer.Typer(
    help="The organization's projects, which group its keys and sandboxes.",
    no_args_is_help=True,
    rich_markup_mode="markdown",
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout")]
ProjectRef = Annotated[str, typer.Argument(help="The project's id or name")]
Color = Annotated[str | None, typer.Option("--color", help="A colour as #rrggbb, e.g. #3b82f6")]
Description = Annotated[str | None, typer.Option("--description", help="What the project is for")]


def _wire(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True)
    return data


def _project(rt: RunTools, ref: str, *, as_json: bool) -> Project:
    try:
        return rt.projects.resolve(ref)
    except LookupError:
        fail(f"no project {ref} in this organization", code=EXIT_NOT_FOUND, as_json=as_json)


@app.command("list")
def list_projects(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """List the organization's projects; * marks the default one.

    Examples:

        runtools project list

        runtools project list --json | jq -r '.data[] | .id + " " + .name'
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        projects = rt.projects.list()
    if as_json:
        emit_json({"data": [_wire(p) for p in projects]})
        return
    table(
        ["", "ID", "NAME", "COLOR", "DESCRIPTION", "CREATED"],
        [
            [
                "*" if p.is_default else "",
                p.id,
                p.name or "-",
                p.color or "-",
                p.description or "-",
                when(p.created_at),
            ]
            for p in projects
        ],
    )


@app.command("create")
def create_project(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="A name no other project of the organization has")],
    color: Color = None,
    description: Description = None,
    as_json: JsonFlag = False,
) -> None:
    """Create a project (admins) and print its id.

    Examples:

        runtools project create web --color "#3b82f6" --description "The storefront"

        PROJECT=$(runtools project create ci --json | jq -r .id)
        runtools auth keys create "ci deploy" --scopes "sandbox:*" --project "$PROJECT"
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        project = rt.projects.create(name, color=color, description=description)
    if as_json:
        emit_json(_wire(project))
        return
    typer.echo(f"Created project {project.name} ({project.id}).")


@app.command("rename")
def rename_project(
    ctx: typer.Context,
    project: ProjectRef,
    name: Annotated[str, typer.Argument(help="The project's new name")],
    as_json: JsonFlag = False,
) -> None:
    """Rename a project (admins); the default project too.

    Examples:

        runtools project rename web storefront

        runtools project rename 3f2b9c1e-8d4a-4b6f-9e2d-1a7c5b3e8f90 storefront
    """
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        renamed = rt.projects.rename(_project(rt, project, as_json=as_json).id, name)
    if as_json:
        emit_json(_wire(renamed))
        return
    typer.echo(f"Renamed project {renamed.id} to {renamed.name}.")


@app.command("delete")
def delete_project(
    ctx: typer.Context, project: ProjectRef, yes: YesFlag = False, as_json: JsonFlag = False
) -> None:
    """Delete a project (admins): its keys and sandboxes move to the default project.

    The default project cannot be deleted. On a terminal it asks first
    (--yes skips the question).

    Examples:

        runtools project delete web

        runtools project delete web --yes --json
    """
    confirm(
        f"Delete project {project}? Its keys and sandboxes move to the default project.",
        yes=yes,
        as_json=as_json,
    )
    with api_errors(as_json), client(ctx, as_json=as_json) as rt:
        deleted = rt.projects.delete(_project(rt, project, as_json=as_json).id)
    if as_json:
        emit_json(_wire(deleted))
        return
    typer.echo(
        f"Deleted project {deleted.name} ({deleted.id}); {deleted.moved_api_keys} key(s) and "
        f"{deleted.moved_sandboxes} sandbox(es) moved to the default project."
    )
