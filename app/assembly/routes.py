"""Admin pages for blueprints: list, YAML upload and download, and a form editor that shows,
for every pick, how many items its bank version has (updated as the admin edits)."""

from __future__ import annotations

from typing import Annotated, Any

import yaml
from fastapi import APIRouter, File, HTTPException, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app.assembly.models import Blueprint
from app.assembly.service import (
    BlueprintSpec,
    Pick,
    Section,
    blueprint_by_code,
    blueprint_rows,
    check_blueprint,
    editor_choices,
    save_blueprint,
    spec_from_model,
)
from app.auth.deps import AdminUser, ClockDep
from app.bank.constructs import KNOWN_CONSTRUCTS
from app.bank.parsed import ImportFailed, Problem, problem
from app.db import DbSession
from app.uploads import read_isolated
from app.web import redirect, render

router = APIRouter(prefix="/admin/blueprints")
MAX_SECTIONS = 10
MAX_PICKS = 30
MAX_BLUEPRINT_BYTES = 1_000_000


def _list_page(request: Request, db: Session, *, status_code: int = 200, **context) -> Response:
    rows = blueprint_rows(db)
    defaults: dict[str, Any] = {"problems": [], "saved": None}
    return render(request, "assembly/blueprints.html", status_code=status_code,
                  blueprints=rows, **{**defaults, **context})


@router.get("", include_in_schema=False)
def blueprints_page(request: Request, db: DbSession, _user: AdminUser) -> Response:
    return _list_page(request, db, saved=request.query_params.get("saved"))


@router.post("/upload", include_in_schema=False)
def blueprints_upload(request: Request, db: DbSession, clock: ClockDep, user: AdminUser,
                      file: Annotated[UploadFile, File()]) -> Response:
    """A plain ``def`` (a worker thread), reading the YAML in a child process with a time and
    memory budget (app/uploads.py): never in the event loop (#13, finding 6)."""
    name = (file.filename or "blueprint.yaml").rsplit("/", 1)[-1][:200]
    data = file.file.read(MAX_BLUEPRINT_BYTES + 1)
    try:
        text = data.decode("utf-8-sig")
        if len(data) > MAX_BLUEPRINT_BYTES:
            raise ImportFailed([problem(name, "", "", key="blueprint_too_large", limit_mb=1)])
        spec, problems = read_isolated("blueprint", text, source=name)
        if problems or spec is None:
            raise ImportFailed(problems)
        blueprint = save_blueprint(db, spec, source=name, actor=f"user:{user.username}",
                                   now=clock.now())
    except UnicodeDecodeError:
        return _list_page(request, db, status_code=422,
                          problems=[problem(name, "", "", key="blueprint_not_utf8")])
    except ImportFailed as exc:
        return _list_page(request, db, status_code=422, problems=exc.problems)
    return _list_page(request, db, saved=blueprint.code)


@router.get("/{code}.yaml", include_in_schema=False)
def blueprint_yaml(code: str, db: DbSession, _user: AdminUser) -> Response:
    blueprint = _blueprint_or_404(db, code)
    text = yaml.safe_dump(spec_to_document(spec_from_model(blueprint)), allow_unicode=True,
                          sort_keys=False, width=100)
    return Response(text, media_type="application/x-yaml", headers={
        "Content-Disposition": f'attachment; filename="{code}.blueprint.yaml"'})


def spec_to_document(spec: BlueprintSpec) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": "cact-blueprint/1", "code": spec.code, "name": spec.name}
    if spec.description:
        doc["description"] = spec.description
    if spec.time_limit_minutes:
        doc["time_limit_minutes"] = spec.time_limit_minutes
    doc["sections"] = []
    for s in spec.sections:
        section: dict[str, Any] = {"title": s.title, "instructions": s.instructions}
        if s.time_limit_minutes:
            section["time_limit_minutes"] = s.time_limit_minutes
        section.update(shuffle_items=s.shuffle_items, shuffle_options=s.shuffle_options,
                       allow_back=s.allow_back)
        if not s.keep_passages:
            section["keep_passages"] = False
        section["picks"] = [{k: v for k, v in (("bank", p.bank), ("version", p.version),
                                                ("construct", p.construct), ("level", p.level),
                                                ("count", p.count)) if v is not None}
                            for p in s.picks]
        doc["sections"].append(section)
    return doc


def _blueprint_or_404(db: Session, code: str) -> Blueprint:
    blueprint = blueprint_by_code(db, code)
    if blueprint is None:
        raise HTTPException(status_code=404)
    return blueprint


# -- the form editor ----------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def spec_from_form(form: Any) -> BlueprintSpec:
    """The editor posts flat fields: s{i}_title, s{i}_p{j}_construct, ... (i, j from 0)."""
    spec = BlueprintSpec(code=str(form.get("code", "")).strip().upper(),
                         name=str(form.get("name", "")).strip(),
                         description=str(form.get("description", "")),
                         time_limit_minutes=_int(form.get("time_limit_minutes")))
    for i in range(min(_int(form.get("sections")) or 0, MAX_SECTIONS)):
        section = Section(
            title=str(form.get(f"s{i}_title", "")).strip(),
            instructions=str(form.get(f"s{i}_instructions", "")),
            time_limit_minutes=_int(form.get(f"s{i}_time")),
            shuffle_items=form.get(f"s{i}_shuffle_items") == "on",
            shuffle_options=form.get(f"s{i}_shuffle_options") == "on",
            allow_back=form.get(f"s{i}_allow_back") == "on",
            keep_passages=form.get(f"s{i}_keep_passages") == "on",
        )
        for j in range(min(_int(form.get(f"s{i}_picks")) or 0, MAX_PICKS)):
            prefix = f"s{i}_p{j}_"
            count = _int(form.get(prefix + "count"))
            section.picks.append(Pick(
                bank=str(form.get(prefix + "bank", "")), construct=str(
                    form.get(prefix + "construct", "")),
                count=count if count is not None else -1,
                version=_int(form.get(prefix + "version")), level=_int(form.get(prefix + "level"))))
        spec.sections.append(section)
    return spec


def _apply_action(spec: BlueprintSpec, action: str) -> None:
    verb, _, where = action.partition(":")
    numbers = [int(n) for n in where.split(":") if n.isdigit()]
    if verb == "add_section" and len(spec.sections) < MAX_SECTIONS:
        spec.sections.append(Section(title="", picks=[Pick(bank="", construct="", count=1)]))
    elif verb == "remove_section" and numbers and numbers[0] < len(spec.sections):
        del spec.sections[numbers[0]]
    elif verb == "add_pick" and numbers and numbers[0] < len(spec.sections):
        picks = spec.sections[numbers[0]].picks
        if len(picks) < MAX_PICKS:
            last = picks[-1] if picks else None
            picks.append(Pick(bank=last.bank if last else "", construct="", count=1))
    elif verb == "remove_pick" and len(numbers) == 2 and numbers[0] < len(spec.sections):
        picks = spec.sections[numbers[0]].picks
        if numbers[1] < len(picks):
            del picks[numbers[1]]


def _editor(request: Request, db: Session, spec: BlueprintSpec, *, existing: bool,
            problems: list[Problem] | None = None, status_code: int = 200) -> Response:
    if problems is None:
        problems = check_blueprint(db, spec, source="editor")
    return render(request, "assembly/editor.html", fragment="assembly/_editor_form.html",
                  status_code=status_code, spec=spec, problems=problems, existing=existing,
                  **editor_choices(db, set(KNOWN_CONSTRUCTS)))


@router.get("/new", include_in_schema=False)
def editor_new(request: Request, db: DbSession, _user: AdminUser) -> Response:
    spec = BlueprintSpec(code="", name="", sections=[
        Section(title="Potensi", time_limit_minutes=60,
                picks=[Pick(bank="", construct="", count=1)])])
    return _editor(request, db, spec, existing=False, problems=[])


@router.get("/{code}/edit", include_in_schema=False)
def editor_edit(request: Request, code: str, db: DbSession, _user: AdminUser) -> Response:
    return _editor(request, db, spec_from_model(_blueprint_or_404(db, code)), existing=True)


@router.post("/editor", include_in_schema=False)
async def editor_update(request: Request, db: DbSession, _user: AdminUser) -> Response:
    """Re-render the editor after an edit: add/remove rows, recount available items."""
    form = await request.form()
    spec = spec_from_form(form)
    _apply_action(spec, str(form.get("action", "")))
    return _editor(request, db, spec, existing=form.get("existing") == "1")


@router.post("/save", include_in_schema=False)
async def editor_save(request: Request, db: DbSession, clock: ClockDep,
                      user: AdminUser) -> Response:
    form = await request.form()
    spec = spec_from_form(form)
    try:
        save_blueprint(db, spec, source="editor", actor=f"user:{user.username}",
                       now=clock.now())
    except ImportFailed as exc:
        return _editor(request, db, spec, existing=form.get("existing") == "1",
                       problems=exc.problems, status_code=422)
    return redirect(request, f"/admin/blueprints?saved={spec.code}")
