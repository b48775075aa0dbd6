"""Every importer, fed what arrives on a bad day (truncated files, random bytes, the wrong
encoding, a file far too big, a valid file with a byte flipped), either reads it or refuses it
with its located problems: never another exception, which would be a traceback on the CLI and
an HTTP 500 on the upload page."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml

from app.bank.parsed import ImportFailed
from app.bank.reading import ImportOptions, read_bank
from app.scoring.imports import parse_ratings, parse_standards
from app.sessions.roster import parse_roster
from tests.factories import bank_doc, bank_zip

QTI = (Path(__file__).resolve().parents[1] / "fixtures" / "qti" / "qti21_single.xml").read_bytes()
ROSTER = ("nip,name,job_group,grade,position,unit\n"
          "198001012005011001,Budi Santoso,pengawas,,Kepala Subbagian,Dinas Pendidikan\n"
          "198001012005011002,Sérgio,fungsional,Ahli Muda,Analis,Sekretariat\n").encode()
STANDARDS = (b"job_key,competency,required_level\npengawas,integritas,3\n"
             b"fungsional:Ahli Muda,kerjasama,2\n")
RATINGS = b"nip,period,rating\n198001012005011001,2025,baik\n198001012005011002,2025,90\n"
# The test bank without its image (a YAML file alone has no media folder).
BANK_YAML = yaml.safe_dump(bank_doc(items=[i for i in bank_doc()["items"]
                                           if i["code"] != "FIG-1"]),
                           allow_unicode=True, sort_keys=False).encode()
BANK_CSV = (b"code,kind,construct,stem,option_a,option_b,option_c,key\n"
            b"N-1,single,potensi.numerik,2 + 2 = ?,3,4,5,B\n"
            b"N-2,single,potensi.numerik,3 + 3 = ?,6,7,8,A\n")


def bank(name: str):
    options = ImportOptions(code="FUZZ", title="Fuzz", kind="potensi",
                            default_construct="potensi.numerik")
    return lambda data: read_bank({name: data}, source=name, options=options)


IMPORTERS = {
    "roster": (lambda d: parse_roster(d, source="r.csv"), ROSTER),
    "standards": (lambda d: parse_standards(d, source="s.csv"), STANDARDS),
    "ratings": (lambda d: parse_ratings(d, source="k.csv"), RATINGS),
    "bank.yaml": (bank("b.yaml"), BANK_YAML),
    "bank.csv": (bank("b.csv"), BANK_CSV),
    "bank.zip": (bank("b.zip"), bank_zip()),
    "qti.xml": (bank("q.xml"), QTI),
}


def damaged(valid: bytes, rng: random.Random) -> list[bytes]:
    cases = [b"", b"\x00" * 64, bytes(rng.randrange(256) for _ in range(4096)),
             valid.decode("utf-8", "replace").encode("utf-16"),
             valid.decode("utf-8", "replace").encode("cp1252", "replace"),
             valid.replace(b"\n", b"\r"), valid * 400, b'"' + b"x" * 300_000,
             b"PK\x03\x04" + valid, b"\xef\xbb\xbf" + valid[: len(valid) // 2]]
    cases += [valid[:cut] for cut in range(0, len(valid), max(1, len(valid) // 25))]
    for _ in range(25):
        flipped = bytearray(valid)
        flipped[rng.randrange(len(flipped))] = rng.randrange(256)
        cases.append(bytes(flipped))
    return cases


@pytest.mark.parametrize("name", sorted(IMPORTERS))
def test_an_importer_reads_or_refuses_never_crashes(name):
    importer, valid = IMPORTERS[name]
    importer(valid)  # the valid file itself is read
    rng = random.Random(name)
    for case in damaged(valid, rng):
        try:
            importer(case)
        except ImportFailed as exc:
            assert exc.problems and all(p.message for p in exc.problems), (name, case[:60])
