"""The web console's HTTP side, on aiohttp: one page, MJPEG camera streams, a WebSocket for
status and live plots, JSON for the episode list and playback, POSTs for the controls.

Why aiohttp: one well-kept package gives the server, WebSockets, streamed responses (MJPEG)
and middlewares, without an ASGI stack beside it; the page is plain HTML and JS shipped in
this package (no build step, nothing loaded from the internet).

The server runs its own asyncio loop in a thread, beside the ROS executor; anything that
blocks (a service call, a store read, a JPEG encode) runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import Protocol
from urllib.parse import urlencode

from aiohttp import WSMsgType, web

from vla_robot.console.episodes import EpisodeCatalog, EpisodeNotFound
from vla_robot.console.live import LiveState
from vla_robot.console.security import TOKEN_COOKIE, ConsoleConfig, refusal

log = logging.getLogger("vla_robot.console")

# The only files the server reads from disk: fixed names in this package, never a request path.
STATIC = {"console.js": "text/javascript", "console.css": "text/css"}
CSP = ("default-src 'self'; img-src 'self' data: blob:; connect-src 'self'; script-src 'self'; style-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


class Controls(Protocol):
    """What the page drives (``vla_robot.ros.console_node.OperatorControls`` over ROS)."""

    def act(self, action: str): ...  # an episode action (recorder_client.ACTIONS)

    def set_instruction(self, text: str): ...

    def status(self) -> dict: ...  # the recorder's status

    def estop(self): ...

    def resume_arm(self): ...  # release a latched e-stop and start: only on an explicit, confirmed request

    def arm_status(self) -> dict: ...  # e-stopped / holding / following, from the arm's diagnostics


@dataclass
class PageInfo:
    """Static facts the page needs once: cameras, joint names, keys, rates."""

    title: str
    cameras: tuple[str, ...]
    joint_names: tuple[str, ...]
    keys: dict[str, str]
    extra: dict = field(default_factory=dict)


def _static(name: str) -> bytes:
    return resources.files("vla_robot.console").joinpath("static", name).read_bytes()


class ConsoleServer:
    def __init__(self, config: ConsoleConfig, controls: Controls, live: LiveState, catalog: EpisodeCatalog,
                 info: PageInfo):
        self.config = config
        self.controls = controls
        self.live = live
        self.catalog = catalog
        self.info = info
        self.port: int | None = None
        self.events: list[dict] = []  # what operators did and what came back, newest last
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._closing: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # -- app -------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard], client_max_size=64 * 1024)
        app.add_routes([
            web.get("/", self._index),
            web.get("/static/{name}", self._static_file),
            web.get("/api/config", self._config),
            web.get("/api/status", self._status),
            web.get("/api/episodes", self._episodes),
            web.get(r"/api/episodes/{index:\d+}", self._episode),
            web.get(r"/api/episodes/{index:\d+}/thumbnail.jpg", self._thumbnail),
            web.get(r"/api/episodes/{index:\d+}/frames/{camera}/{t:\d+}.jpg", self._frame),
            web.get("/stream/{camera}.mjpg", self._mjpeg),
            web.get("/api/frame/{camera}.jpg", self._latest_frame),
            web.get("/ws", self._websocket),
            web.post("/api/control/{action}", self._control),
            web.post("/api/estop", self._estop),
            web.post("/api/arm/resume", self._resume_arm),
            web.post("/api/instruction", self._instruction),
        ])
        return app

    @web.middleware
    async def _guard(self, request: web.Request, handler):
        if request.path == "/" and "token" in request.query and self.config.token:
            return self._login(request)
        refused = refusal(self.config, request.method, request.path, request.headers)
        if refused is not None:
            status, reason = refused
            log.warning("console: refused %s %s: %s", request.method, request.path, reason)
            response = web.json_response({"ok": False, "message": reason}, status=status)
        else:
            try:
                response = await handler(request)
            except EpisodeNotFound as exc:
                response = web.json_response({"ok": False, "message": str(exc)}, status=404)
            except web.HTTPException as exc:  # unknown routes included: JSON, with the same headers
                if exc.status < 400:
                    raise
                response = web.json_response({"ok": False, "message": exc.text or exc.reason}, status=exc.status)
        if not response.prepared:  # streams set their headers themselves
            response.headers.update({"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
                                     "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer",
                                     "Cache-Control": "no-store"})
        return response

    def _login(self, request: web.Request) -> web.StreamResponse:
        if not self.config.token_ok(request.query.get("token")):
            return web.json_response({"ok": False, "message": "wrong token"}, status=401)
        rest = {k: v for k, v in request.query.items() if k != "token"}
        response = web.Response(status=303, headers={"Location": "/" + (f"?{urlencode(rest)}" if rest else "")})
        response.set_cookie(TOKEN_COOKIE, self.config.token, httponly=True, samesite="Strict", path="/")
        return response

    async def _blocking(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    # -- page ------------------------------------------------------------------------------
    async def _index(self, request):
        return web.Response(body=_static("index.html"), content_type="text/html", charset="utf-8")

    async def _static_file(self, request):
        name = request.match_info["name"]
        if name not in STATIC:
            raise web.HTTPNotFound(text=f"no static file {name!r}")
        return web.Response(body=_static(name), content_type=STATIC[name], charset="utf-8")

    async def _config(self, request):
        i = self.info
        return web.json_response({"title": i.title, "cameras": list(i.cameras), "joint_names": list(i.joint_names),
                                  "keys": i.keys,
                                  "stream_fps": self.config.stream_fps, **i.extra})

    async def _status(self, request):
        return web.json_response(await self._blocking(self._status_payload))

    def _status_payload(self) -> dict:
        return {"recorder": self.controls.status(), "arm": self.controls.arm_status(),
                "streams": self.live.stream_report(),
                "events": self.events[-8:], "store": self.catalog.summary()}

    # -- episodes --------------------------------------------------------------------------
    async def _episodes(self, request):
        return web.json_response({"episodes": await self._blocking(self.catalog.episodes)})

    async def _episode(self, request):
        return web.json_response(await self._blocking(self.catalog.series, int(request.match_info["index"])))

    async def _thumbnail(self, request):
        data = await self._blocking(self.catalog.thumbnail, int(request.match_info["index"]))
        return web.Response(body=data, content_type="image/jpeg")

    async def _frame(self, request):
        m = request.match_info
        data = await self._blocking(self.catalog.frame, int(m["index"]), m["camera"], int(m["t"]))
        return web.Response(body=data, content_type="image/jpeg")

    # -- live ------------------------------------------------------------------------------
    def _camera(self, request) -> str:
        camera = request.match_info["camera"]
        if camera not in self.live.cameras:
            raise web.HTTPNotFound(text=f"no camera {camera!r}; cameras: {list(self.live.cameras)}")
        return camera

    async def _latest_frame(self, request):
        seq, data = await self._blocking(self.live.frame_jpeg, self._camera(request))
        if data is None:
            raise web.HTTPServiceUnavailable(text="no frame from this camera yet")
        return web.Response(body=data, content_type="image/jpeg")

    async def _mjpeg(self, request):
        """multipart/x-mixed-replace: each part one JPEG; a new frame at most ``stream_fps`` times a second."""
        camera = self._camera(request)
        response = web.StreamResponse(headers={
            "Content-Type": "multipart/x-mixed-replace; boundary=frame", "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff"})
        await response.prepare(request)
        period = 1.0 / self.config.stream_fps
        sent = 0
        try:
            while not self._closing.is_set():
                if self.live.frame_seq(camera) != sent:
                    sent, data = await self._blocking(self.live.frame_jpeg, camera)
                    if data is not None:
                        await response.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                             + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                await asyncio.sleep(period)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return response

    async def _websocket(self, request):
        """Pushes status and the joint/action samples that arrived since the last push."""
        ws = web.WebSocketResponse(heartbeat=10.0)
        await ws.prepare(request)
        seen = {"state": 0, "action": 0}
        period = 1.0 / self.config.status_hz
        reader = asyncio.ensure_future(ws.receive())
        try:
            while not self._closing.is_set() and not ws.closed:
                payload = await self._blocking(self._status_payload)
                for kind in seen:
                    seen[kind], payload[kind] = self.live.samples_since(kind, seen[kind])
                await ws.send_str(json.dumps(payload, default=str))
                done, _ = await asyncio.wait({reader}, timeout=period)
                if done:
                    msg = reader.result()
                    if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                        break
                    reader = asyncio.ensure_future(ws.receive())
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            reader.cancel()
            await ws.close()
        return ws

    # -- controls --------------------------------------------------------------------------
    def _record(self, what: str, answer) -> web.Response:
        event = {"time": time.time(), "action": what, **answer.as_dict()}
        self.events.append(event)
        del self.events[:-50]
        (log.info if answer.ok else log.warning)("console: %s -> %s", what, answer.message)
        return web.json_response(event, status=200 if answer.ok else 409)

    async def _control(self, request):
        action = request.match_info["action"]
        return self._record(action, await self._blocking(self.controls.act, action))

    async def _estop(self, request):
        return self._record("estop", await self._blocking(self.controls.estop))

    async def _resume_arm(self, request):
        """The arm follows commands again: a request must say so explicitly (``{"confirm": true}``)."""
        try:
            confirmed = (await request.json()).get("confirm") is True
        except (ValueError, AttributeError):
            confirmed = False
        if not confirmed:
            raise web.HTTPBadRequest(text='resuming lets the arm move again: send JSON {"confirm": true} '
                                          "once the workspace is clear")
        return self._record("resume arm", await self._blocking(self.controls.resume_arm))

    async def _instruction(self, request):
        try:
            text = str((await request.json())["text"])
        except (ValueError, KeyError, TypeError):
            raise web.HTTPBadRequest(text='send JSON {"text": "..."}') from None
        return self._record("instruction", await self._blocking(self.controls.set_instruction, text))

    # -- lifecycle -------------------------------------------------------------------------
    def start(self, timeout_s: float = 10.0) -> None:
        """Serve in a background thread; returns once the socket is bound (``self.port`` set)."""
        self._thread = threading.Thread(target=self._serve, name="console-http", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"console server did not start within {timeout_s} s")
        if self._error is not None:
            raise self._error

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._bind())
        except BaseException as exc:  # a port in use, say: reported by start()
            self._error = OSError(f"console cannot serve on {self.config.host}:{self.config.port}: {exc}")
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._runner.cleanup())
        self._loop.close()

    async def _bind(self) -> None:
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(self.build_app(), handle_signals=False, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{'127.0.0.1' if host == '0.0.0.0' else host}:{self.port}/"

    def stop(self) -> None:
        if self._loop is None or not self._loop.is_running():
            return
        self._loop.call_soon_threadsafe(self._closing.set)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
