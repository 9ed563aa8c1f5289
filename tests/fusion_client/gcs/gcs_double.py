"""A strict stand-in for the parts of the GCS JSON API fake-gcs-server gets wrong: resumable
uploads as real GCS runs them (a status query does not finish the upload, chunks must start at
the committed offset and be multiples of 256 KiB, a chunk cut short keeps only whole 256 KiB
blocks) and reads pinned with `ifGenerationMatch` (412 once the object was replaced)."""

from __future__ import annotations

import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote, urlsplit

ALIGN = 256 * 1024


@dataclass
class _Upload:
    name: str
    data: bytearray = field(default_factory=bytearray)


@dataclass
class GcsDouble:
    objects: dict[str, tuple[bytes, int]] = field(default_factory=dict)  # name -> data, gen
    log: list[str] = field(default_factory=list)  # "PUT bytes a-b/*", "QUERY", "GET g=..."
    cut_next_chunk: bool = False  # keep half of the next chunk (256 KiB-aligned), then hang up
    uploads: dict[str, _Upload] = field(default_factory=dict)
    _generations: itertools.count = field(default_factory=lambda: itertools.count(1000))

    def put(self, name: str, data: bytes) -> int:
        generation = next(self._generations)
        self.objects[name] = (data, generation)
        return generation

    def __enter__(self) -> GcsDouble:
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                query = parse_qs(urlsplit(self.path).query)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upload_id = str(len(double.uploads) + 1)
                double.uploads[upload_id] = _Upload(query["name"][0])
                host = self.headers["Host"]
                location = f"http://{host}/upload/storage/v1/b/b/o?uploadType=resumable&upload_id={upload_id}"
                self._reply(200, b"", {"Location": location})

            def do_PUT(self) -> None:
                upload = double.uploads[parse_qs(urlsplit(self.path).query)["upload_id"][0]]
                length = int(self.headers.get("Content-Length") or 0)
                span = self.headers["Content-Range"]
                if span == "bytes */*":
                    self.rfile.read(length)
                    double.log.append("QUERY")
                    have = len(upload.data)
                    headers = {"Range": f"bytes=0-{have - 1}"} if have else {}
                    return self._reply(308, b"", headers)
                double.log.append(f"PUT {span}")
                match = re.fullmatch(r"bytes (?:(\d+)-(\d+)|\*)/(\d+|\*)", span)
                assert match, span
                start = int(match.group(1)) if match.group(1) else len(upload.data)
                total = match.group(3)
                if start != len(upload.data) or (total == "*" and length % ALIGN):
                    self.rfile.read(length)
                    return self._reply(400, json.dumps({"error": {"message": span}}).encode())
                if double.cut_next_chunk and length:
                    double.cut_next_chunk = False
                    body = self.rfile.read(length // 2)
                    upload.data += body[: len(body) // ALIGN * ALIGN]
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                upload.data += self.rfile.read(length)
                if total == "*":
                    have = len(upload.data)
                    return self._reply(308, b"", {"Range": f"bytes=0-{have - 1}"})
                assert int(total) == len(upload.data)
                generation = double.put(upload.name, bytes(upload.data))
                info = {"name": upload.name, "size": str(len(upload.data))}
                info["generation"] = str(generation)
                return self._reply(200, json.dumps(info).encode())

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                name = unquote(parts.path.rsplit("/o/", 1)[1])
                data, generation = double.objects[name]
                wanted = query.get("ifGenerationMatch", [None])[0]
                double.log.append(f"GET ifGenerationMatch={wanted}")
                if wanted is not None and int(wanted) != generation:
                    error = {"error": {"code": 412, "message": "conditionNotMet"}}
                    return self._reply(412, json.dumps(error).encode())
                first, last = map(int, self.headers["Range"][6:].split("-"))
                piece = data[first : last + 1]
                span = f"bytes {first}-{first + len(piece) - 1}/{len(data)}"
                headers = {"Content-Range": span, "x-goog-generation": str(generation)}
                return self._reply(206, piece, headers)

            def _reply(self, status: int, body: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
