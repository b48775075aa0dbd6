"""Reading uploaded archives without trusting them: no paths outside the archive, no links,
bounded file count and size, and no zip bombs."""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath

from app.bank.parsed import Problem

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


def _bad_name(name: str) -> str | None:
    if "\\" in name:
        return "uses backslashes"
    path = PurePosixPath(name)
    if path.is_absolute() or name.startswith("/"):
        return "is an absolute path"
    if any(part == ".." for part in path.parts):
        return "leaves the archive (..)"
    if path.parts and ":" in path.parts[0]:
        return "names a drive"
    return None


def unpack_zip(data: bytes, *, source: str) -> Unpacked:
    """All regular files of the archive, or the problems that make it unsafe to read."""
    problems: list[Problem] = []

    def problem(location: str, message: str) -> None:
        problems.append(Problem(source, location, "", message))

    if len(data) > MAX_UPLOAD_BYTES:
        problem("", f"the file is {len(data) // 1_048_576} MB; the limit is "
                f"{MAX_UPLOAD_BYTES // 1_048_576} MB: split the bank or shrink its images")
        return Unpacked({}, problems)
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        problem("", f"not a readable zip archive ({exc}); create it again with a zip tool")
        return Unpacked({}, problems)
    entries = [e for e in archive.infolist() if not e.is_dir()]
    if len(entries) > MAX_FILES:
        problem("", f"the archive holds {len(entries)} files; at most {MAX_FILES} are accepted")
        return Unpacked({}, problems)
    declared = sum(e.file_size for e in entries)
    if declared > MAX_UNPACKED_BYTES:
        problem("", f"the archive unpacks to {declared // 1_048_576} MB; at most "
                f"{MAX_UNPACKED_BYTES // 1_048_576} MB are accepted")
        return Unpacked({}, problems)
    files: dict[str, bytes] = {}
    total = 0
    for entry in entries:
        name = entry.filename
        reason = _bad_name(name)
        if reason:
            problem(f"entry {name!r}", f"the path {reason}; rebuild the archive with relative "
                    "paths inside one folder")
            continue
        mode = entry.external_attr >> 16
        if stat.S_ISLNK(mode):
            problem(f"entry {name!r}", "is a symbolic link; put the real file in the archive")
            continue
        if entry.compress_size and entry.file_size / entry.compress_size > MAX_RATIO:
            problem(f"entry {name!r}", "expands more than 200 times (a zip bomb?); the archive "
                    "is refused")
            continue
        with archive.open(entry) as fh:
            # Read at most what the header declares (+1 byte to catch a lying header).
            content = fh.read(entry.file_size + 1)
        if len(content) != entry.file_size:
            problem(f"entry {name!r}", "is larger than its header says; the archive is refused")
            continue
        total += len(content)
        if total > MAX_UNPACKED_BYTES:
            problem("", "the archive unpacks to more than 200 MB; it is refused")
            break
        if name.startswith("__MACOSX/") or PurePosixPath(name).name.startswith("._"):
            continue  # resource forks that macOS adds to zips
        files[name] = content
    return Unpacked(files, problems)
