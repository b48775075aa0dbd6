"""Reading a bank upload into a checked ParsedBank: format detection (CACT YAML/JSON, CSV or
.xlsx, QTI; one file, a zip or a folder) and validation. Pure: no database, so the server can
run it in a child process with a time and memory budget (app/uploads.py), away from the exam's
requests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from app.bank import formats
from app.bank.archive import MAX_UPLOAD_BYTES, is_zip, unpack_zip
from app.bank.parsed import ImportFailed, ParsedBank, Problem, problem
from app.bank.validate import validate_bank
from app.spreadsheets import is_workbook

BANK_FILE_SUFFIXES = (".yaml", ".yml", ".json")
TABLE_SUFFIXES = (".csv", ".xlsx")


@dataclass
class ImportOptions:
    """What the upload form or CLI adds to formats that do not carry it (CSV, QTI)."""

    code: str = ""
    title: str = ""
    kind: str = ""
    default_construct: str = ""
    skip_unsupported: bool = False


def read_path(path: Path) -> dict[str, bytes]:
    """A file as {name: bytes}, or a folder as {relative path: bytes} (read like a zip)."""
    if path.is_dir():
        return {p.relative_to(path).as_posix(): p.read_bytes()
                for p in sorted(path.rglob("*")) if p.is_file()}
    return {path.name: path.read_bytes()}


def parse_upload(files: dict[str, bytes], *, source: str, options: ImportOptions
                 ) -> tuple[ParsedBank | None, list[Problem]]:
    """Detect the format of an upload and read it. ``files`` is one uploaded file
    ({name: bytes}) or the entries of a folder (CLI)."""
    if len(files) == 1:
        (name, data), = files.items()
        if len(data) > MAX_UPLOAD_BYTES:
            return None, [problem(source, "", "", key="upload_too_large",
                                  limit=MAX_UPLOAD_BYTES // 1_048_576)]
        if is_zip(data) and not is_workbook(data):  # an .xlsx is a zip too: a table
            unpacked = unpack_zip(data, source=source)
            if unpacked.problems:
                return None, unpacked.problems
            return _parse_files(_strip_common_folder(unpacked.files), source=source,
                                options=options)
    return _parse_files(files, source=source, options=options)


def _strip_common_folder(files: dict[str, bytes]) -> dict[str, bytes]:
    """Zips made by "compress folder" put everything under one top folder: look inside it."""
    tops = {name.split("/", 1)[0] for name in files}
    if len(tops) == 1 and all("/" in name for name in files):
        return {name.split("/", 1)[1]: data for name, data in files.items()}
    return files


def _media_of(files: dict[str, bytes]) -> dict[str, bytes]:
    return {name.split("/", 1)[1]: data for name, data in files.items()
            if name.startswith("media/") and "/" not in name[6:] and name[6:]}


def _parse_files(files: dict[str, bytes], *, source: str, options: ImportOptions
                 ) -> tuple[ParsedBank | None, list[Problem]]:
    top = {name: data for name, data in files.items() if "/" not in name}
    suffixes = {PurePosixPath(name).suffix.lower() for name in top}
    if "imsmanifest.xml" in top or (len(files) == 1 and suffixes == {".xml"}):
        return _parse_qti(files, source=source, options=options)
    bank_files = [n for n in top if n.lower().endswith(BANK_FILE_SUFFIXES)]
    # CSV-shaped banks: a .csv, or a workbook by its content whatever its name (.xlsx)
    csv_files = [n for n in top if n.lower().endswith(TABLE_SUFFIXES) or is_workbook(top[n])]
    if len(bank_files) + len(csv_files) != 1:
        xml = sorted(n for n in files if n.lower().endswith(".xml"))
        if not bank_files and not csv_files and xml:
            shown = ", ".join(xml[:5]) + (", ..." if len(xml) > 5 else "")
            return None, [problem(source, "", "", key="qti_manifest_missing", found=shown)]
        if not top:
            return None, [problem(source, "", "", key="one_bank_file_found_nothing")]
        return None, [problem(source, "", "", key="one_bank_file",
                              found=", ".join(sorted(top)))]
    if bank_files:
        name = bank_files[0]
        label = name if len(files) == 1 and name == source else f"{source}:{name}"
        try:
            text = files[name].decode("utf-8-sig")
        except UnicodeDecodeError:
            return None, [problem(label, "", "", key="bank_file_not_utf8")]
        bank, problems = formats.parse_bank_file(text, source=label)
    else:
        name = csv_files[0]
        label = name if len(files) == 1 and name == source else f"{source}:{name}"
        bank, problems = formats.parse_csv(files[name], source=label, code=options.code,
                                           title=options.title, kind=options.kind)
        problems += _missing_options(options, label)
    if bank is not None:
        bank.media = _media_of(files)
        bank.source_filename = source
    return bank, problems


def _missing_options(options: ImportOptions, label: str) -> list[Problem]:
    return [problem(label, "", "", key="upload_option_missing", what=what)
            for what in ("code", "title", "kind") if not getattr(options, what)]


def _parse_qti(files: dict[str, bytes], *, source: str, options: ImportOptions
               ) -> tuple[ParsedBank | None, list[Problem]]:
    from app.bank import qti  # only QTI uploads need the XML machinery

    result = qti.parse_qti_files(files, source=source,
                                 default_construct=options.default_construct or None,
                                 skip_unsupported=options.skip_unsupported)
    problems = result.problems + _missing_options(options, source)
    bank = ParsedBank(code=options.code, title=options.title, kind=options.kind,
                      items=result.items, media=result.media, source_filename=source,
                      skipped=result.skipped, passages=result.passages)
    return bank, problems


def read_bank(files: dict[str, bytes], *, source: str, options: ImportOptions) -> ParsedBank:
    """Read and check an upload; raises ImportFailed listing every problem."""
    bank, problems = parse_upload(files, source=source, options=options)
    if bank is not None:
        problems += validate_bank(bank)
    if problems or bank is None:
        raise ImportFailed(problems)
    return bank
