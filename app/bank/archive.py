"""Reading uploaded archives without trusting them: no paths outside the archive, no links,
bounded file count and size, and no zip bombs."""

from __future__ import annotations

import io
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath

from app.bank.parsed import Phrase, Problem, problem

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_UNPACKED_BYTES = 200 * 1024 * 1024
MAX_FILES = 5000
MAX_RATIO = 200  # an entry expanding more than this is treated as a bomb


@dataclass
class Unpacked:
    files: dict[str, bytes]
    problems: list[Problem]


def is_zip(data: bytes) -> bool:
    return data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06"


def _bad_name(name: str) -> Phrase | None:
    if "\\" in name:
        return Phrase(key="path_backslashes")
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        return Phrase(key="path_absolute")
    if any(part == ".." for part in path.parts):
        return Phrase(key="path_leaves_archive")
    if path.parts and ":" in path.parts[0]:
        return Phrase(key="path_drive")
    return None


def unpack_zip(data: bytes, *, source: str) -> Unpacked:
    """All regular files of the archive, or the problems that make it unsafe to read."""
    problems: list[Problem] = []

    def add(location: str, *, key: str, **params: object) -> None:
        problems.append(problem(source, location, "", key=key, **params))

    if len(data) > MAX_UPLOAD_BYTES:
        add("", key="zip_too_large", size=len(data) // 1_048_576,
            limit=MAX_UPLOAD_BYTES // 1_048_576)
        return Unpacked({}, problems)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        add("", key="zip_unreadable", error=str(exc))
        return Unpacked({}, problems)
    entries = [e for e in archive.infolist() if not e.is_dir()]
    if len(entries) > MAX_FILES:
        add("", key="zip_too_many_files", count=len(entries), limit=MAX_FILES)
        return Unpacked({}, problems)
    declared = sum(e.file_size for e in entries)
    if declared > MAX_UNPACKED_BYTES:
        add("", key="zip_unpacks_too_large", size=declared // 1_048_576,
            limit=MAX_UNPACKED_BYTES // 1_048_576)
        return Unpacked({}, problems)
    files: dict[str, bytes] = {}
    total = 0
    for entry in entries:
        name = entry.filename
        reason = _bad_name(name)
        if reason:
            add(f"entry {name!r}", key="zip_bad_path", reason=reason)
            continue
        mode = entry.external_attr >> 16
        if stat.S_ISLNK(mode):
            add(f"entry {name!r}", key="zip_symlink")
            continue
        if entry.compress_size and entry.file_size / entry.compress_size > MAX_RATIO:
            add(f"entry {name!r}", key="zip_bomb")
            continue
        try:
            with archive.open(entry) as fh:
                # Read at most what the header declares (+1 byte to catch a lying header).
                content = fh.read(entry.file_size + 1)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
                ValueError) as exc:
            # A damaged member (CRC, deflate stream, an encrypted or unknown compression):
            # refused by name instead of a traceback.
            add(f"entry {name!r}", key="zip_member_unreadable", error=str(exc)[:120])
            continue
        if len(content) != entry.file_size:
            add(f"entry {name!r}", key="zip_lying_header")
            continue
        total += len(content)
        if total > MAX_UNPACKED_BYTES:
            add("", key="zip_unpacked_over_limit")
            break
        if name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("._"):
            continue  # resource forks that macOS adds to zips
        files[name] = content
    return Unpacked(files, problems)
