"""Admin pages for item banks: list and upload, version history, item browser with a preview
exactly as a test taker sees it (and with the key, for admins), export, key corrections, and
the media endpoint that serves bank images from the database."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy.orm import Session

from app import paths
from app.auth.deps import AdminUser, ClockDep, StaffUser
from app.bank import browse, service
from app.bank.archive import MAX_UPLOAD_BYTES
from app.bank.constructs import KNOWN_CONSTRUCTS
from app.bank.export import export_version
from app.bank.media import media_response
from app.bank.models import (
    BankVersion,
    ItemBank,
    ItemKind,
)
from app.bank.parsed import ImportFailed, Problem
from app.bank.reading import ImportOptions
from app.db import DbSession, PageNumber, RowId, WriteDb
from app.scoring.corrections import correct_key
from app.uploads import read_isolated
from app.web import render

router = APIRouter()


def _bank_page(request: Request, db: Session, *, status_code: int = 200, **context) -> Response:
    defaults: dict[str, Any] = {"result": None, "problems": [], "form": {}}
    return render(request, "bank/banks.html", fragment="bank/_upload_result.html",
                  status_code=status_code, banks=browse.bank_rows(db),
                  constructs=sorted(KNOWN_CONSTRUCTS), **{**defaults, **context})


@router.get("/admin/banks", include_in_schema=False)
def banks_page(request: Request, db: DbSession, _user: AdminUser) -> Response:
    return _bank_page(request, db)


@router.post("/admin/banks/upload", include_in_schema=False)
def banks_upload(
    request: Request,
    db: DbSession,
    clock: ClockDep,
    user: AdminUser,
    file: Annotated[UploadFile, File()],
    code: Annotated[str, Form(max_length=64)] = "",
    title: Annotated[str, Form(max_length=200)] = "",
    kind: Annotated[str, Form(max_length=20)] = "",
    default_construct: Annotated[str, Form(max_length=100)] = "",
    skip_unsupported: Annotated[bool, Form()] = False,
) -> Response:
    """A plain ``def``: it runs in a worker thread, so neither reading the file (in a child
    process with a time and memory budget, app/uploads.py) nor storing thousands of items
    holds the event loop that answers the takers' saves (#13, finding 6)."""
    form = {"code": code, "title": title, "kind": kind, "construct": default_construct}
    name = (file.filename or "upload").rsplit("/", 1)[-1][:200]
    data = file.file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        problems = [Problem(name, "", "", f"the file is larger than "
                            f"{MAX_UPLOAD_BYTES // 1_048_576} MB; split the bank")]
        return _bank_page(request, db, status_code=422, problems=problems, form=form)
    options = ImportOptions(code=code.strip().upper(), title=title.strip(),
                                    kind=kind.strip(), default_construct=default_construct.strip(),
                                    skip_unsupported=skip_unsupported)
    try:
        bank = read_isolated("bank", {name: data}, source=name, options=options)
        outcome = service.store_bank(db, bank, source=name, actor=f"user:{user.username}",
                                     actor_id=user.id, now=clock.now())
    except ImportFailed as exc:
        return _bank_page(request, db, status_code=422, problems=exc.problems, form=form)
    return _bank_page(request, db, result=outcome, form={})


def _bank_or_404(db: Session, code: str) -> ItemBank:
    bank = browse.bank_by_code(db, code)
    if bank is None:
        raise HTTPException(status_code=404)
    return bank


def _version_or_404(db: Session, bank: ItemBank, number: int) -> BankVersion:
    version = browse.version_of(db, bank, number)
    if version is None:
        raise HTTPException(status_code=404)
    return version


@router.get("/admin/banks/{code}", include_in_schema=False)
def bank_versions(request: Request, code: str, db: DbSession, _user: AdminUser) -> Response:
    bank = _bank_or_404(db, code)
    return render(request, "bank/versions.html", bank=bank,
                  versions=browse.version_rows(db, bank))


@router.get("/admin/banks/{code}/v/{number}", include_in_schema=False)
def bank_items(
    request: Request, code: str, number: RowId, db: DbSession, _user: AdminUser,
    construct: str = "", kind: str = "", level: str = "", page: PageNumber = 1,
) -> Response:
    bank = _bank_or_404(db, code)
    version = _version_or_404(db, bank, number)
    found = browse.item_page(db, version, construct=construct, kind=kind, level=level,
                             page=page)
    return render(request, "bank/items.html", fragment="bank/_item_rows.html", bank=bank,
                  version=version, items=found.items, total=found.total, page=found.page,
                  pages=found.pages, constructs=found.constructs,
                  filters={"construct": construct, "kind": kind, "level": level})


@router.get("/admin/banks/{code}/v/{number}/export", include_in_schema=False)
def bank_export(code: str, number: RowId, db: WriteDb, clock: ClockDep,
                user: AdminUser) -> Response:
    """The export carries every key and weight, so it is audited."""
    bank = _bank_or_404(db, code)
    version = _version_or_404(db, bank, number)
    data = export_version(db, version, actor=f"user:{user.username}", now=clock.now())
    return Response(data, media_type="application/zip", headers={
        "Content-Disposition": f'attachment; filename="{bank.code}-v{version.version}.zip"'})


def _item_context(db: Session, item_id: int) -> dict[str, Any]:
    detail = browse.item_detail(db, item_id)
    if detail is None:
        raise HTTPException(status_code=404)
    return detail


@router.get("/admin/items/{item_id}", include_in_schema=False)
def item_page(request: Request, item_id: RowId, db: DbSession, user: AdminUser,
              clock: ClockDep, key: bool = False) -> Response:
    context = _item_context(db, item_id)
    if key:  # the key on screen is as consequential as the audited export of the same keys
        browse.record_key_view(request.app.state.db, context, actor=f"user:{user.username}",
                               now=clock.now())
    return render(request, "bank/item.html", show_key=key, error=None, corrected=False, **context)


@router.post("/admin/items/{item_id}/key", include_in_schema=False)
async def item_correct_key(request: Request, item_id: RowId, db: DbSession, clock: ClockDep,
                           user: AdminUser) -> Response:
    context = _item_context(db, item_id)
    form = await request.form()
    reason = str(form.get("reason", ""))[:2000]
    item = context["item"]
    try:
        if item.kind == ItemKind.single:
            correct_key(db, item=item, key=str(form.get("key", "")), reason=reason,
                        actor=f"user:{user.username}", actor_id=user.id, now=clock.now())
        else:
            weights = {o.label: Decimal(str(form.get(f"weight_{o.label}", "")).replace(",", "."))
                       for o in context["options"]}
            correct_key(db, item=item, weights=weights, reason=reason,
                        actor=f"user:{user.username}", actor_id=user.id, now=clock.now())
    except (ValueError, InvalidOperation) as exc:
        return render(request, "bank/item.html", status_code=422, show_key=True,
                      error=str(exc) or "invalid number", corrected=False, **context)
    return render(request, "bank/item.html", show_key=True, error=None, corrected=True,
                  **_item_context(db, item_id))


@router.get("/media/{version_id}/{name}", include_in_schema=False)
def bank_media(version_id: RowId, name: str, db: DbSession, _user: StaffUser) -> Response:
    return media_response(db, version_id, name)


FORMAT_DOC = paths.DOCS_DIR / "itembank-format.md"


@router.get("/admin/help/itembank-format", include_in_schema=False)
def format_help(request: Request, _user: AdminUser) -> Response:
    """The format guide, for admins who only have the browser: docs/itembank-format.md as HTML,
    in Indonesian from docs/itembank-format.id.md when that is the page's language (English
    when there is no translation). The Markdown is ours, but the renderer still refuses raw
    HTML (it is shown as text) and unsafe link targets (javascript:, data:)."""
    from markdown_it import MarkdownIt
    from markupsafe import Markup

    from app.web import request_language

    lang = request_language(request)
    translated = FORMAT_DOC.with_name(f"itembank-format.{lang}.md")
    source = translated if lang != "en" and translated.is_file() else FORMAT_DOC
    renderer = MarkdownIt("commonmark", {"html": False}).enable("table")
    # Safe: raw HTML in the Markdown is escaped by the renderer ("html": False).
    html = Markup(renderer.render(source.read_text(encoding="utf-8")))  # noqa: S704
    return render(request, "bank/help.html", html=html,
                  doc_lang="en" if source == FORMAT_DOC else lang)
