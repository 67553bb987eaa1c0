"""A stand-in for Kaggle's API on 127.0.0.1:7777 (kagglesdk's KAGGLE_API_ENVIRONMENT=TEST endpoint).

It speaks the two requests a dataset download makes: ``POST /api/v1/datasets.DatasetApiService/
DownloadDataset`` (answered with a 302 to a file URL, as Kaggle redirects to storage, or 401 for a
bad credential) and ``GET /files/<name>`` (with Content-Length, Accept-Ranges, an x-goog-hash MD5,
and Range support). ``drop_once`` makes the first file transfer stop halfway and close the socket.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = 7777
DOWNLOAD_PATH = "/api/v1/datasets.DatasetApiService/DownloadDataset"


class FakeKaggle:
    def __init__(
        self,
        payload: bytes,
        *,
        token: str = "good-token",
        legacy: tuple[str, str] = ("alice", "good-key"),
        drop_once: bool = False,
    ):
        self.payload = payload
        self.token = token
        self.legacy = legacy
        self.drop_once = drop_once
        self.requests: list[tuple[str, str, dict]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", PORT), self._handler())
        self.server.daemon_threads = True
        self.server.handle_error = lambda request, address: None  # a client hanging up is expected
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeKaggle:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _authorized(self, header: str | None) -> bool:
        if header == f"Bearer {self.token}":
            return True
        basic = "Basic " + base64.b64encode(f"{self.legacy[0]}:{self.legacy[1]}".encode()).decode()
        return header == basic

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(("POST", self.path, dict(self.headers)))
                if self.path != DOWNLOAD_PATH:
                    return self._json(404, {"code": 404, "message": f"unknown endpoint {self.path}"})
                if not fake._authorized(self.headers.get("Authorization")):
                    return self._json(401, {"code": 401, "message": "Unauthenticated"})
                if (
                    body.get("ownerSlug") != "birdy654"
                    or body.get("datasetSlug") != "cifake-real-and-ai-generated-synthetic-images"
                ):
                    return self._json(404, {"code": 404, "message": "dataset not found"})
                self.send_response(302)
                self.send_header("Location", f"http://localhost:{PORT}/files/cifake.zip")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self):
                fake.requests.append(("GET", self.path, dict(self.headers)))
                if not self.path.startswith("/files/"):
                    return self._json(404, {"code": 404, "message": "not found"})
                data = fake.payload
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
                self.send_header("Content-Type", "application/zip")
                self.send_header("Content-Length", str(len(data) - start))
                self.send_header("Accept-Ranges", "bytes")
                self.send_header("x-goog-hash", f"crc32c=AAAAAA==,md5={md5}")
                self.end_headers()
                if fake.drop_once and not rng:
                    fake.drop_once = False
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.wfile.write(data[start:])

        return Handler
