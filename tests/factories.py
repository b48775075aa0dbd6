"""Small, valid test data (a bank with every item kind) shared by the bank and blueprint tests."""

from __future__ import annotations

import io
import zipfile

import yaml

from app.bank.reading import ImportOptions
from app.bank.service import import_bank

SVG = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">'
       b'<rect width="10" height="10"/></svg>')


def bank_doc(**changes) -> dict:
    doc = {
        "format": "cact-itembank/1",
        "bank": {"code": "UJI-POT", "title": "Bank uji", "kind": "potensi"},
        "scoring": {"points": {"single": {"correct": 5, "wrong": 0}},
                    # One numerik item can give two levels, so the table names only those
                    # two (a blueprint that cannot reach a level of the rule is refused).
                    "levels": {"potensi.numerik": {"norm_table": [{"min_raw": 0, "level": 1},
                                                                  {"min_raw": 5, "level": 2}]}}},
        "items": [
            {"code": "NUM-1", "kind": "single", "construct": "potensi.numerik", "level": 2,
             "irt": {"a": 1.2, "b": -0.4, "c": 0.2}, "tags": ["deret"],
             "stem": "<p>2, 4, 6, …</p>",
             "options": [{"id": "A", "text": "7"}, {"id": "B", "text": "8", "key": True}]},
            {"code": "FIG-1", "kind": "single", "construct": "potensi.figural",
             "stem": '<p>Gambar berikutnya?</p><p><img src="media/fig1.svg" alt="deret"></p>',
             "options": [{"id": "A", "text": "Segitiga", "key": True},
                         {"id": "B", "text": "Kotak"}]},
            {"code": "EMO-1", "kind": "weighted", "construct": "potensi.kecerdasan_emosional",
             "stem": "<p>Rekan Anda marah. Anda …</p>",
             "options": [{"id": "A", "text": "mendengarkan", "weight": 5, "level": 3},
                         {"id": "B", "text": "membalas", "weight": 1}]},
            {"code": "MUL-1", "kind": "multiple", "construct": "potensi.verbal",
             "scoring": {"min": 0, "max": 5}, "stem": "<p>Pilih semua kata baku.</p>",
             "options": [{"id": "A", "text": "apotek", "points": 2.5},
                         {"id": "B", "text": "kualitas", "points": 2.5},
                         {"id": "C", "text": "resiko", "points": -1}]},
            {"code": "LIK-1", "kind": "likert", "construct": "potensi.motivasi_komitmen",
             "reverse": True, "stem": "<p>Saya mudah bosan.</p>",
             "options": [{"id": str(n), "text": t} for n, t in
                         enumerate(["STS", "TS", "N", "S", "SS"], 1)]},
        ],
    }
    doc.update(changes)
    return doc


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def bank_zip(doc: dict | None = None, media: dict[str, bytes] | None = None) -> bytes:
    text = yaml.safe_dump(doc or bank_doc(), allow_unicode=True, sort_keys=False)
    files = {"bank.yaml": text.encode()}
    for name, data in (media if media is not None else {"fig1.svg": SVG}).items():
        files[f"media/{name}"] = data
    return zip_of(files)


def run_import(db, clock, name: str, data: bytes, **options):
    return import_bank(db, {name: data}, source=name, options=ImportOptions(**options),
                       actor="test", actor_id=None, now=clock.now())




# Validity rules for tests that are not about them: no rapid-guessing or answered-share rule
# (both off by their documented settings); straight-lining stays on.
UNTIMED = {"rapid_threshold_s": 0, "min_answered_share": 0}


def make_open_session(db, clock, *, secret: str, blueprint_yaml: str | None = None,
                      participants: int = 2, code: str = "S1", first: int = 1,
                      section_seconds: int | None = None, validity: dict | None = None):
    """A bank, a blueprint, an open session and a roster; returns (session, [(nip, token)]).

    The session's validity rules (``validity``) default to :data:`UNTIMED`: most tests answer
    a handful of items in the same instant of a frozen clock, which a real session would take
    for rapid guessing. Tests of the validity rules pass the real defaults (``{}``)."""
    from datetime import timedelta

    from app.assembly.service import blueprint_version_ids, import_blueprint
    from app.auth.security import encrypt_token, keyed_digest, new_participant_token
    from app.bank.service import freeze_versions
    from app.sessions.models import Participant, RosterEntry, SessionState, TestSession

    run_import(db, clock, "uji.zip", bank_zip())
    text = (blueprint_yaml or BLUEPRINT).replace("UJI-BP", f"BP-{code}")
    blueprint = import_blueprint(db, text, source="bp.yaml", actor="test", now=clock.now())
    if section_seconds:  # very short sections for clock tests in a real browser
        spec = dict(blueprint.spec)
        spec["sections"] = [{**s, "time_limit_s": section_seconds} for s in spec["sections"]]
        blueprint.spec = spec
    freeze_versions(db, blueprint_version_ids(db, blueprint.id))
    session = TestSession(code=code, name="Sesi uji", room="Lab 1", blueprint_id=blueprint.id,
                          starts_at=clock.now(), ends_at=clock.now() + timedelta(hours=4),
                          state=SessionState.open, created_at=clock.now(),
                          settings={"validity": UNTIMED if validity is None else validity})
    db.add(session)
    db.flush()
    logins = []
    for n in range(first, first + participants):
        nip = f"198001012005011{n:03d}"
        person = Participant(nip=nip, name=f"Peserta {n}", job_group="pengawas")
        db.add(person)
        db.flush()
        token = new_participant_token()
        db.add(RosterEntry(session_id=session.id, participant_id=person.id,
                           token_hmac=keyed_digest(secret, "participant-token", token),
                           token_encrypted=encrypt_token(secret, token)))
        logins.append((nip, token))
    db.flush()
    return session, logins


BLUEPRINT = """\
format: cact-blueprint/1
code: UJI-BP
name: Uji
sections:
  - title: Kognitif
    time_limit_minutes: 10
    picks:
      - {bank: UJI-POT, construct: potensi.numerik, count: 1}
      - {bank: UJI-POT, construct: potensi.figural, count: 1}
      - {bank: UJI-POT, construct: potensi.verbal, count: 1}
  - title: Non-kognitif
    time_limit_minutes: 5
    picks:
      - {bank: UJI-POT, construct: potensi.kecerdasan_emosional, count: 1}
      - {bank: UJI-POT, construct: potensi.motivasi_komitmen, count: 1}
"""


def sit(db, clock, nip: str, token: str, *, secret: str, answer: bool = True):
    """A taker through the delivery services: log in, answer every item (its first option as
    shown) or none, section by section, and hand in. Returns the attempt."""
    from sqlalchemy import select

    from app.bank.models import Item
    from app.delivery import attempts, saving, timing
    from app.delivery.models import AttemptItem

    attempt = attempts.login(db, nip=nip, token=token, workstation=f"PC-{nip[-3:]}",
                             client_addr="10.0.0.1", secret=secret, now=clock.now()).attempt
    timing.start(db, attempt=attempt, now=clock.now())
    form = db.execute(select(AttemptItem, Item.kind).join(Item, Item.id == AttemptItem.item_id)
                      .where(AttemptItem.attempt_id == attempt.id)
                      .order_by(AttemptItem.position)).all()
    seq = 0
    for section in sorted({entry.section for entry, _ in form}):
        if section:
            timing.next_section(db, attempt=attempt, now=clock.now())
        for entry, kind in (f for f in form if f[0].section == section and answer):
            seq += 1
            option = entry.option_order[0]
            saving.save_answer(db, attempt=attempt, item_id=entry.item_id,
                               response=[option] if kind.value == "multiple" else option,
                               seq=seq, flagged=False, workstation=f"PC-{nip[-3:]}",
                               grace_s=15, now=clock.now())
    timing.submit(db, attempt=attempt, reason="taker", actor="taker:test", now=clock.now())
    return attempt
