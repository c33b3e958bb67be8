"""The HTTP plumbing both emulators share: a stdlib ThreadingHTTPServer in a thread, request
log, bearer auth, fault injection (status codes, 429s, slow answers, dropped connections,
dripping bodies) and an optional per-request hook (tests use it to hold a request)."""
from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class Fault:
    """Injected on the next `count` requests whose method/path match.

    kind: "status" (answer `status` with `body`/`headers`), "drop" (close the connection
    without answering), "drop_after" (process the request, then close without answering), "slow" (sleep `delay` then answer normally), "drip" (send headers,
    then one byte every `delay` seconds for `length` bytes)."""

    kind: str = "status"
    status: int = 503
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    count: int = 1
    path: str = ""  # substring of the path; "" matches every request
    method: str = ""  # "" matches every method
    delay: float = 0.0
    length: int = 120


@dataclass
class Seen:
    at: float  # time.monotonic() when the request arrived
    method: str
    path: str
    query: dict[str, str]
    body: Any
    headers: dict[str, str]


class Reply(Exception):
    """Raised by a route to answer with an error status."""

    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}


def iso_z(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{moment.microsecond // 1000:03d}Z"


def make_cert(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1/localhost (for TLS tests)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "emu-cert.pem", directory / "emu-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def _query(text: str) -> dict[str, str]:
    """Query parameters; a repeated key (`properties=a&properties=b`) joins as "a,b"."""
    out: dict[str, str] = {}
    for k, v in parse_qsl(text, keep_blank_values=True):
        out[k] = f"{out[k]},{v}" if k in out else v
    return out


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "emulator/1.0"
    #: headers and body go out in separate writes: with Nagle on, each answer on a kept-alive
    #: connection waits for the client's delayed ACK (~40 ms a request on Linux loopback)
    disable_nagle_algorithm = True

    def log_message(self, *args: Any) -> None:  # quiet
        pass

    def _go(self) -> None:
        self.server.emu._dispatch(self)  # type: ignore[attr-defined]

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _go


class Emulator:
    """Subclasses implement `route(method, path, query, body, headers) -> (status, body, headers)`."""

    name = "emulator"

    def __init__(self, token: str = "test-token", *, tls: tuple[Path, Path] | None = None, port: int = 0) -> None:
        self.token = token
        self.faults: list[Fault] = []
        self.seen: list[Seen] = []
        self.hook: Callable[[Seen], None] | None = None
        self.lock = threading.RLock()
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.emu = self  # type: ignore[attr-defined]
        self.scheme = "http"
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True, name=f"{self.name}-emulator")
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- switches ---------------------------------------------------------------------------
    def add_fault(self, fault: Fault | None = None, **kw: Any) -> Fault:
        fault = fault or Fault(**kw)
        with self.lock:
            self.faults.append(fault)
        return fault

    def requests_to(self, fragment: str, method: str = "") -> list[Seen]:
        return [s for s in self.seen if fragment in s.path and (not method or s.method == method)]

    # -- to implement -------------------------------------------------------------------------
    def route(self, method: str, path: str, query: dict[str, str], body: Any,
              headers: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        raise NotImplementedError

    def auth_error(self) -> tuple[int, Any]:
        raise NotImplementedError

    def common_headers(self, path: str) -> dict[str, str]:
        return {}

    # -- plumbing -------------------------------------------------------------------------------
    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.count > 0 and (not f.method or f.method == method) and f.path in path:
                    f.count -= 1
                    return f
        return None

    def _dispatch(self, h: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in h.headers.items()}
        seen = Seen(time.monotonic(), h.command, parts.path, _query(parts.query),
                    body, {k: v for k, v in headers.items() if k != "authorization"})
        with self.lock:
            self.seen.append(seen)
        if self.hook:
            self.hook(seen)
        fault = self._take_fault(h.command, parts.path)
        if fault and fault.kind == "drop":
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault and fault.kind == "slow":
            time.sleep(fault.delay)
        if fault and fault.kind == "drip":
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(fault.length))
            h.end_headers()
            try:
                for _ in range(fault.length):
                    h.wfile.write(b" ")
                    h.wfile.flush()
                    time.sleep(fault.delay)
            except OSError:
                pass
            h.close_connection = True
            return
        if fault and fault.kind == "status":
            self._send(h, fault.status, fault.body, {**self.common_headers(parts.path), **fault.headers})
            return
        if headers.get("authorization") != f"Bearer {self.token}":
            status, err = self.auth_error()
            self._send(h, status, err, self.common_headers(parts.path))
            return
        try:
            status, out, extra = self.route(h.command, parts.path, seen.query, body, headers)
        except Reply as r:
            status, out, extra = r.status, r.body, r.headers
        if fault and fault.kind == "drop_after":  # processed, but the answer is lost
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        self._send(h, status, out, {**self.common_headers(parts.path), **extra})

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
        if isinstance(body, bytes):  # sent as is (a fault: a body that is not JSON)
            data = body
        else:
            data = b"" if body is None or status == 204 else json.dumps(body).encode("utf-8")
        try:
            h.send_response(status)
            if data:
                h.send_header("Content-Type", "application/json;charset=utf-8")
            h.send_header("Content-Length", str(len(data)))
            for k, v in headers.items():
                h.send_header(k, v)
            h.end_headers()
            if data:
                h.wfile.write(data)
        except OSError:
            h.close_connection = True
