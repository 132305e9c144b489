"""data_prep.download and data_prep.archives against a local HTTP server on 127.0.0.1 (never the network)."""

import hashlib
import http.server
import io
import tarfile
import threading
import urllib.parse

import pytest

from data_prep import archives, download

PAYLOAD = bytes(range(256)) * 400  # 100 kB


class Server(http.server.ThreadingHTTPServer):
    """Serves ``files`` with Range support; ``cut`` cuts the first response of a path after that many bytes."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files, self.cut, self.requests = {}, {}, []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        parsed = urllib.parse.urlparse(self.path)
        server.requests.append((parsed.path, self.headers.get("Range")))
        query = dict(urllib.parse.parse_qsl(parsed.query))
        if parsed.path == "/uc":  # Google Drive's large-file warning page
            page = (f'<html><form id="download-form" action="/download" method="get">'
                    f'<input type="hidden" name="id" value="{query["id"]}">'
                    f'<input type="hidden" name="export" value="download">'
                    f'<input type="hidden" name="confirm" value="t">'
                    f'<input type="hidden" name="uuid" value="abc"></form></html>').encode()
            return self._send(200, page, "text/html; charset=utf-8")
        if parsed.path == "/download":
            if query.get("confirm") != "t":
                return self._send(403, b"no", "text/plain")
            parsed = parsed._replace(path="/" + query["id"])
        data = server.files.get(parsed.path)
        if data is None:
            return self._send(404, b"not found", "text/plain")
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].rstrip("-"))
        body = data[start:]
        self.send_response(206 if start else 200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = server.cut.pop(parsed.path, None)
        self.wfile.write(body[:cut] if cut else body)

    def _send(self, code, body, content_type):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def server():
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_fetch_verifies_and_renames_into_place(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    dest = download.fetch(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "data.bin.partial").exists()


def test_complete_file_is_not_fetched_again(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    download.fetch(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, progress=False)
    download.fetch(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, progress=False)
    assert len(server.requests) == 1


def test_checksum_mismatch_deletes_partial_and_names_url_and_checksum(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    url = f"{server.url}/data.bin"
    with pytest.raises(download.ChecksumError) as err:
        download.fetch(url, tmp_path / "data.bin", md5="0" * 32, progress=False)
    assert url in str(err.value) and "0" * 32 in str(err.value) and MD5 in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_download_resumes_with_range(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    server.cut["/data.bin"] = 30_000  # the first response breaks off after 30 kB
    dest = download.fetch(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, backoff=0, progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", None), ("/data.bin", "bytes=30000-")]


def test_partial_file_from_a_killed_run_is_resumed(server, tmp_path):
    server.files["/data.bin"] = PAYLOAD
    (tmp_path / "data.bin.partial").write_bytes(PAYLOAD[:50_000])
    download.fetch(f"{server.url}/data.bin", tmp_path / "data.bin", md5=MD5, progress=False)
    assert (tmp_path / "data.bin").read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", "bytes=50000-")]


def test_missing_file_is_a_clear_error_without_retries(server, tmp_path):
    with pytest.raises(RuntimeError, match="HTTP 404.*put it at"):
        download.fetch(f"{server.url}/nothing.bin", tmp_path / "x", backoff=0, progress=False)
    assert len(server.requests) == 1


def test_google_drive_confirm_form_is_followed(server, tmp_path):
    server.files["/FILEID"] = PAYLOAD
    dest = download.fetch_google_drive("FILEID", tmp_path / "captions.tar.gz", base=server.url, md5=MD5,
                                       progress=False)
    assert dest.read_bytes() == PAYLOAD
    assert [path for path, _ in server.requests] == ["/uc", "/download"]


# ---- archives -------------------------------------------------------------------------------------------------

def _tar(path, members):
    """Write a .tar.gz with (TarInfo, bytes | None) members."""
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name, data=b"hello"):
    return tarfile.TarInfo(name), data


def test_extract_writes_files_and_is_idempotent(tmp_path):
    archive = _tar(tmp_path / "a.tgz", [_file("top/jpg/image_00001.jpg"), _file("top/readme.txt", b"hi")])
    dest = archives.extract(archive, tmp_path / "out")
    assert (dest / "top" / "jpg" / "image_00001.jpg").read_bytes() == b"hello"
    (dest / "top" / "readme.txt").write_bytes(b"changed")
    archives.extract(archive, tmp_path / "out")
    assert (dest / "top" / "readme.txt").read_bytes() == b"changed", "a finished extraction is not redone"


def _special(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info, None


@pytest.mark.parametrize("member, reason", [
    (_file("/etc/evil"), "absolute"),
    (_file("ok/../../evil"), r"'\.\.'"),
    (_special("link", tarfile.SYMTYPE, "/etc/passwd"), "link"),
    (_special("hard", tarfile.LNKTYPE, "ok/a"), "link"),
    (_special("dev", tarfile.CHRTYPE), "device"),
    (_special("fifo", tarfile.FIFOTYPE), "device"),
])
def test_unsafe_members_are_refused_before_anything_is_written(tmp_path, member, reason):
    archive = _tar(tmp_path / "bad.tgz", [_file("ok/a"), member])
    with pytest.raises(archives.UnsafeArchiveError, match=reason):
        archives.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()
    assert not (tmp_path.parent / "evil").exists()


def test_truncated_archive_is_named(tmp_path):
    archive = _tar(tmp_path / "a.tgz", [_file(f"f{i}", bytes(range(256)) * 200) for i in range(20)])
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"a\.tgz is truncated"):
        archives.extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()
