"""Safe, atomic extraction of downloaded tar archives.

A tar member can name an absolute path, climb out with ``..``, or be a link or a device file; extracting such a
member blindly can overwrite files anywhere. ``extract`` checks every member first and refuses the whole
archive, with the reason, if one is unsafe; then the standard library's ``"data"`` filter (Python 3.11.4+, PEP 706)
checks each again as it writes, into a temporary folder renamed into place when complete: an extraction killed
half-way is redone, never mistaken for a complete one.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import zlib
from pathlib import Path, PurePosixPath


class UnsafeArchiveError(ValueError):
    """An archive member would escape the target folder or is not a plain file or folder."""


def check_member(member: tarfile.TarInfo, archive: Path) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or member.name.startswith(("/", "\\")) or ":" in name.parts[0]:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} has an absolute path; refusing to extract")
    if ".." in name.parts:
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} climbs out with '..'; refusing to extract")
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a link; refusing to extract")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: member {member.name!r} is a device or special file; refusing")


def extract(archive, dest) -> Path:
    """Extract ``archive`` (any tar compression) into the folder ``dest``, unless that is already done."""
    archive, dest = Path(archive), Path(dest)
    if dest.is_dir():
        return dest
    tmp = dest.with_name(dest.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)  # left by a killed run
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member, archive)
            tar.extractall(tmp, members, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ValueError(f"{archive} is truncated or not a valid archive ({err}); delete it and run again "
                         f"to download it afresh") from err
    except UnsafeArchiveError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise UnsafeArchiveError(f"{err}. Nothing was extracted: delete {archive} and use a copy from the "
                                 f"dataset's own site") from None
    tmp.mkdir(parents=True, exist_ok=True)  # an empty archive still extracts to a folder
    os.replace(tmp, dest)
    return dest
