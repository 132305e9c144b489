"""Downloads that survive bad networks: resume, retry, verify, rename into place.

``fetch(url, dest, md5=...)`` downloads into ``dest.partial``, resuming it with an HTTP Range request if a
previous run was interrupted, retries with exponential backoff, checks the checksum and only then renames the
file to ``dest``. A file already at ``dest`` whose checksum matches is not fetched again. A checksum mismatch
deletes the partial file and names the URL and both checksums.

Google Drive serves large files behind a "can't scan this file for viruses" page; ``fetch_google_drive``
follows its confirm form. If Drive refuses anyway (quota, changed page), download the file in a browser and
pass its folder with ``--source``.
"""

from __future__ import annotations

import hashlib
import html.parser
import http.client
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

CHUNK = 1 << 20
USER_AGENT = "t2i-course-data-prep/1.0"


class ChecksumError(RuntimeError):
    """A downloaded or supplied file does not have the published checksum."""


def file_digest(path: Path, algorithm: str = "md5") -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, algorithm).hexdigest()


def _expected(md5: str | None, sha256: str | None) -> tuple[str, str] | None:
    if sha256:
        return "sha256", sha256.lower()
    if md5:
        return "md5", md5.lower()
    return None


def verify(path: Path, md5: str | None = None, sha256: str | None = None, url: str = "") -> None:
    """Raise ChecksumError (naming the file, the URL and both checksums) unless ``path`` matches."""
    expected = _expected(md5, sha256)
    if expected is None:
        return
    algorithm, want = expected
    got = file_digest(path, algorithm)
    if got != want:
        raise ChecksumError(f"{path} (from {url or 'a local copy'}) has {algorithm} {got}, expected {want}")


def _open(url: str, start: int, timeout: float):
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if start:
        request.add_header("Range", f"bytes={start}-")
    return urllib.request.urlopen(request, timeout=timeout)


def _download_once(url: str, partial: Path, timeout: float, progress: bool) -> None:
    """Append the rest of ``url`` to ``partial`` (or start over if the server ignores Range)."""
    from tqdm.auto import tqdm

    start = partial.stat().st_size if partial.exists() else 0
    try:
        response = _open(url, start, timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:  # "range not satisfiable": the partial file is already whole
            return
        raise
    with response:
        resumed = start and response.status == 206
        if not resumed:
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=partial.name.removesuffix(".partial"),
                   disable=not progress)
        with open(partial, "ab" if resumed else "wb") as handle:
            for block in iter(lambda: response.read(CHUNK), b""):
                handle.write(block)
                bar.update(len(block))
        bar.close()
    if total is not None and partial.stat().st_size < total:
        raise http.client.IncompleteRead(b"", total - partial.stat().st_size)


def is_complete(dest: Path, md5: str | None = None, sha256: str | None = None, url: str = "") -> bool:
    """Whether ``dest`` is there with the right checksum. A wrong one is deleted (it is fetched again)."""
    if not dest.is_file():
        return False
    try:
        verify(dest, md5, sha256, url)
        return True
    except ChecksumError as err:
        print(f"{err}; downloading it again")
        dest.unlink()
        return False


def fetch(url: str, dest, *, md5: str | None = None, sha256: str | None = None, retries: int = 4,
          backoff: float = 2.0, timeout: float = 60.0, progress: bool = True) -> Path:
    """Download ``url`` to ``dest`` (resumable, retried, verified, atomic) unless it is already there."""
    dest = Path(dest)
    if is_complete(dest, md5, sha256, url):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    for attempt in range(retries + 1):
        try:
            _download_once(url, partial, timeout, progress)
            break
        except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as err:
            if isinstance(err, urllib.error.HTTPError) and 400 <= err.code < 500 and err.code != 429:
                raise RuntimeError(f"{url}: HTTP {err.code} {err.reason}; the file cannot be downloaded from "
                                   f"there. Download it yourself and put it at {dest}") from err
            if attempt == retries:
                raise RuntimeError(f"{url}: download failed after {retries + 1} attempts ({err}); re-run to "
                                   f"resume from {partial}, or put the file at {dest} yourself") from err
            time.sleep(backoff * 2 ** attempt)
    try:
        verify(partial, md5, sha256, url)
    except ChecksumError as err:
        partial.unlink()
        raise ChecksumError(f"{err}. The partial file was deleted; re-run to download it again") from None
    os.replace(partial, dest)
    return dest


class _FormParser(html.parser.HTMLParser):
    """Collects the action and hidden inputs of the first form in Google Drive's warning page."""

    def __init__(self):
        super().__init__()
        self.action, self.fields = None, {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form" and self.action is None:
            self.action = attrs.get("action")
        elif tag == "input" and attrs.get("type") == "hidden" and attrs.get("name"):
            self.fields[attrs["name"]] = attrs.get("value", "")


def google_drive_url(file_id: str, resource_key: str | None = None, base: str = "https://drive.google.com",
                     timeout: float = 60.0) -> str:
    """The direct download URL of a public Drive file, following the large-file confirm form if one appears."""
    query = {"export": "download", "id": file_id}
    if resource_key:
        query["resourcekey"] = resource_key
    url = f"{base}/uc?{urllib.parse.urlencode(query)}"
    with _open(url, 0, timeout) as response:
        if "text/html" not in response.headers.get("Content-Type", ""):
            return response.url  # small file: served directly
        page = response.read().decode("utf-8", "replace")
    form = _FormParser()
    form.feed(page)
    if not form.action or "confirm" not in form.fields:
        raise RuntimeError(f"Google Drive did not offer file {file_id} for download (quota exceeded or the page "
                           f"changed). Download it in a browser from {url} and pass its folder with --source.")
    action = urllib.parse.urljoin(url, form.action)
    return f"{action}?{urllib.parse.urlencode(form.fields)}"


def fetch_google_drive(file_id: str, dest, *, resource_key: str | None = None, md5: str | None = None,
                       base: str = "https://drive.google.com", **kwargs) -> Path:
    """``fetch`` for a public Google Drive file (the Reed et al. caption archives live there)."""
    dest = Path(dest)
    if is_complete(dest, md5, url=f"Google Drive file {file_id}"):
        return dest
    return fetch(google_drive_url(file_id, resource_key, base), dest, md5=md5, **kwargs)
