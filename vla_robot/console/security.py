"""Who may talk to the console: the bind rule, the token, and same-origin control requests.

A page that can start episodes and press the e-stop is a robot control panel, so:

* it binds 127.0.0.1 unless told otherwise, and binding any other interface requires a token
  (``Authorization: Bearer``, or ``/?token=`` once, which sets an HttpOnly, SameSite=Strict cookie);
* without a token, only requests whose ``Host`` is a loopback name are served, so a web page
  that rebinds its own DNS name to 127.0.0.1 cannot read or drive the console;
* control requests (POST, and the WebSocket) from another origin are refused: the ``Origin``
  must be the console's own, ``Sec-Fetch-Site`` must not say cross-site, and a POST must carry
  ``X-VLA-Console: 1``, a header no other site's page can send without a CORS preflight,
  which the console never grants.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
from dataclasses import dataclass

TOKEN_ENV = "VLA_CONSOLE_TOKEN"
TOKEN_COOKIE = "vla_console_token"
CONTROL_HEADER = "X-VLA-Console"
MIN_TOKEN_LENGTH = 16
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")
SAFE_METHODS = ("GET", "HEAD")


class ConsoleSecurityError(ValueError):
    """A configuration that would expose robot controls; the message says how to do it safely."""


def is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def host_name(host_header: str) -> str:
    """``Host`` header without its port: ``127.0.0.1:8080`` -> ``127.0.0.1``, ``[::1]:80`` -> ``::1``."""
    if host_header.startswith("["):
        return host_header[1:].split("]", 1)[0]
    return host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header


@dataclass(frozen=True)
class ConsoleConfig:
    host: str = "127.0.0.1"
    port: int = 8080  # 0: any free port (tests)
    token: str = ""  # empty: taken from $VLA_CONSOLE_TOKEN; required to bind a non-loopback address
    stream_fps: float = 15.0  # MJPEG frames per second sent to each page
    status_hz: float = 10.0  # WebSocket updates (status, live plots) per second

    def __post_init__(self) -> None:
        if not self.token and os.environ.get(TOKEN_ENV):
            object.__setattr__(self, "token", os.environ[TOKEN_ENV])
        if not 0 <= self.port <= 65535:
            raise ConsoleSecurityError(f"console port {self.port} must be in 0..65535")
        if not 0 < self.stream_fps <= 60 or not 0 < self.status_hz <= 50:
            raise ValueError(f"console stream_fps {self.stream_fps} must be in (0, 60] and status_hz "
                             f"{self.status_hz} in (0, 50]")
        if self.token and len(self.token) < MIN_TOKEN_LENGTH:
            raise ConsoleSecurityError(
                f"console token is {len(self.token)} characters; use at least {MIN_TOKEN_LENGTH}, e.g. "
                "python -c 'import secrets; print(secrets.token_urlsafe())'")
        if not is_loopback(self.host) and not self.token:
            raise ConsoleSecurityError(
                f"binding the console to {self.host!r} exposes the robot's controls to the network; set a token "
                f"(parameter console_token / --console-token, or ${TOKEN_ENV}) or bind 127.0.0.1 and use an SSH "
                "tunnel (ssh -L 8080:127.0.0.1:8080 robot-pc)")

    def token_ok(self, candidate: str | None) -> bool:
        return bool(candidate) and hmac.compare_digest(candidate.encode(), self.token.encode())


def refusal(config: ConsoleConfig, method: str, path: str, headers) -> tuple[int, str] | None:
    """Why a request must be refused, as (HTTP status, reason); None lets it through.

    ``headers`` is a case-insensitive mapping (aiohttp's request headers). ``/?token=`` login
    is handled by the server before this check.
    """
    host = headers.get("Host", "")
    if not config.token and not is_loopback(host_name(host)):
        return 403, f"host {host!r} is not this console's; open it as http://127.0.0.1:{config.port}/"
    if config.token:
        bearer = headers.get("Authorization", "")
        given = bearer[7:] if bearer.startswith("Bearer ") else _cookie(headers.get("Cookie", ""), TOKEN_COOKIE)
        if not config.token_ok(given):
            return 401, "this console needs its token: open /?token=<token> once, or send Authorization: Bearer"
    control = method not in SAFE_METHODS or path == "/ws"
    if control:
        origin = headers.get("Origin")
        if origin is not None and origin not in (f"http://{host}", f"https://{host}"):
            return 403, f"control request from another origin ({origin}) refused"
        if headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return 403, "cross-site control request refused"
        if method not in SAFE_METHODS and headers.get(CONTROL_HEADER) != "1":
            return 403, f"control requests need the {CONTROL_HEADER}: 1 header (the console page sends it)"
    return None


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None
