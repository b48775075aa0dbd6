"""The sample QTI 3.0 package in itembank/samples/qti is these items of the sample potensi
bank, exported by the server (tests rebuild it and compare, then import it back). They are all
potensi items because a bank holds one kind: the package imports as one potensi bank."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from app.bank import formats
from app.bank.qti import export_qti3_package
from app.bank.reading import read_path
from app.bank.validate import validate_bank

SAMPLES = Path(__file__).resolve().parents[1] / "itembank" / "samples"
QTI_DIR = SAMPLES / "qti"
CHOSEN = {"potensi": ["NUM-001", "VER-001", "FIG-001", "MUL-001", "INT-001", "EMO-001"]}


def chosen_items():
    items, media = [], {}
    for folder, codes in CHOSEN.items():
        files = read_path(SAMPLES / folder)
        bank, problems = formats.parse_bank_file(files["bank.yaml"].decode(), source=folder)
        bank.media = {n[6:]: d for n, d in files.items() if n.startswith("media/")}
        assert not problems and not validate_bank(bank)
        items += [i for i in bank.items if i.code in codes]
        media.update(bank.media)
    return items, media


def build_package() -> bytes:
    items, media = chosen_items()
    return export_qti3_package(items, media, title="Contoh butir CACT (QTI 3.0)")


def write_folder() -> None:
    """Regenerate itembank/samples/qti from the sample banks."""
    with zipfile.ZipFile(io.BytesIO(build_package())) as archive:
        for name in archive.namelist():
            target = QTI_DIR / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(archive.read(name))


if __name__ == "__main__":
    write_folder()
