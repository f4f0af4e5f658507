"""``pem stream --serve HOST:PORT``: watch a headless box from a browser (MJPEG over HTTP, stdlib only).

    /                 the page: every source side by side, its live FPS / latency / dropped frames and a
                      legend of the model's classes with their share of the newest frame
    /video/<i>.mjpg   source i's overlay as multipart/x-mixed-replace JPEGs (any browser, VLC, ffplay)
    /frame/<i>.jpg    source i's newest overlay as one JPEG
    /stats            the numbers the page shows, as JSON

Bound to 127.0.0.1 unless a host is given (``--serve 0.0.0.0:8080`` for the whole network: there is no
authentication, so only on a network you trust). Each new overlay is JPEG-encoded once, when the first
client asks for it, however many clients watch; a slow client skips frames and never holds up the
stream.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from pem_rt.errors import PemError
from pem_rt.model_meta import ModelMeta
from runtime.metrics import RateMeter
from runtime.results import class_shares
from runtime.sinks import Delivered

DEFAULT_HOST = "127.0.0.1"
JPEG_QUALITY = 80
BOUNDARY = "pemframe"


def parse_serve(text: str, flag: str = "--serve") -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` -> (host, port); the host defaults to 127.0.0.1."""
    host, _, port_text = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        port = int(port_text)
    except ValueError:
        raise PemError(f"{flag} {text}: use HOST:PORT or PORT, e.g. {flag} 8080 or 0.0.0.0:8080") from None
    if not 0 <= port <= 65535:
        raise PemError(f"{flag} {text}: the port must be 0..65535")
    return host, port


@dataclass
class _Tile:
    """The newest overlay of one source and its live numbers (guarded by ``LiveView.cond``)."""

    name: str
    image: np.ndarray | None = None
    seq: int = 0
    jpeg: bytes = b""
    jpeg_seq: int = -1
    rate: RateMeter = field(default_factory=RateMeter)
    latency_ms: float = 0.0
    frames: int = 0
    dropped: int = 0
    classes: dict[str, float] = field(default_factory=dict)


class LiveView:
    """A sink that serves the overlays of ``source_names`` on ``host:port`` until :meth:`close`."""

    wants_overlay = True

    def __init__(
        self, meta: ModelMeta, source_names: list[str], host: str = DEFAULT_HOST, port: int = 0
    ) -> None:
        self.meta = meta
        self.tiles = [_Tile(name) for name in source_names]
        self.cond = threading.Condition()
        self.closed = False
        handler = type("Handler", (_Handler,), {"view": self})
        try:
            self.server = ThreadingHTTPServer((host, port), handler)
        except OSError as e:
            raise PemError(f"--serve {host}:{port}: cannot listen there ({e.strerror})") from None
        self.server.daemon_threads = True
        self.host = host
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="live-view", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def write(self, item: Delivered) -> None:
        if item.overlay is None or item.source >= len(self.tiles):
            return
        shares = class_shares(item.result.labels[::4, ::4], self.meta.classes)  # 1/16 of the pixels: enough
        with self.cond:
            tile = self.tiles[item.source]
            tile.image, tile.seq = item.overlay, tile.seq + 1
            tile.rate.tick()
            tile.latency_ms = item.latency_ms
            tile.frames, tile.dropped = item.metrics.frames, item.metrics.dropped
            tile.classes = shares
            self.cond.notify_all()

    def jpeg(self, index: int, after: int = -1, timeout: float = 1.0) -> tuple[bytes, int] | None:
        """Source ``index``'s newest JPEG once its number passes ``after`` (None on timeout or close)."""
        with self.cond:
            tile = self.tiles[index]
            deadline = time.monotonic() + timeout
            while (tile.image is None or tile.seq <= after) and not self.closed:
                left = deadline - time.monotonic()
                if left <= 0 or not self.cond.wait(left):
                    return None
            if self.closed or tile.image is None:
                return None
            if tile.jpeg_seq != tile.seq:
                ok, data = cv2.imencode(".jpg", tile.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
                tile.jpeg, tile.jpeg_seq = (data.tobytes() if ok else b""), tile.seq
            return tile.jpeg, tile.seq

    def stats(self) -> dict[str, Any]:
        m = self.meta
        with self.cond:
            return {
                "model": f"PEM {m.name} {m.task} {m.input_height}x{m.input_width}",
                "sources": [
                    {
                        "index": i,
                        "name": t.name,
                        "frames": t.frames,
                        "fps": round(t.rate.rate, 2),
                        "latency_ms": round(t.latency_ms, 1),
                        "dropped": t.dropped,
                        "classes": t.classes,
                    }
                    for i, t in enumerate(self.tiles)
                ],
            }

    def page(self) -> str:
        return render_page(self.meta, [t.name for t in self.tiles])

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class _Handler(BaseHTTPRequestHandler):
    view: LiveView
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: no line per request
        pass

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path in ("/", "/index.html"):
            self._send(self.view.page().encode(), "text/html; charset=utf-8")
        elif path == "/stats":
            self._send(json.dumps(self.view.stats()).encode(), "application/json")
        elif (match := re.fullmatch(r"/(video|frame)/(\d+)\.(mjpg|jpg)", path)) and int(match[2]) < len(
            self.view.tiles
        ):
            if match[1] == "video":
                self._stream(int(match[2]))
            else:
                self._frame(int(match[2]))
        else:
            self.send_error(HTTPStatus.NOT_FOUND, "not here: try / (the page), /stats or /video/0.mjpg")

    def _send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _frame(self, index: int) -> None:
        got = self.view.jpeg(index, timeout=5.0)
        if got is None:
            self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
            return
        self._send(got[0], "image/jpeg")

    def _stream(self, index: int) -> None:
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        seq = -1
        try:
            while not self.view.closed:
                got = self.view.jpeg(index, seq)
                if got is None:
                    continue
                data, seq = got
                head = f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\nContent-Length: {len(data)}\r\n\r\n"
                self.wfile.write(head.encode() + data + b"\r\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the viewer went away
        self.close_connection = True


def _legend(meta: ModelMeta) -> str:
    items = []
    for k, name in enumerate(meta.classes):
        r, g, b = (meta.palette[k] if k < len(meta.palette) else (128, 128, 128))[:3]
        items.append(
            f'<li data-class="{html.escape(name)}"><span class="sw" style="background:rgb({r},{g},{b})">'
            f'</span>{html.escape(name)} <span class="share"></span></li>'
        )
    return "\n".join(items)


def render_page(meta: ModelMeta, names: list[str]) -> str:
    """The live page: one tile per source, a legend, numbers refreshed twice a second from /stats."""
    tiles = "\n".join(
        f'<figure class="tile" id="tile{i}"><img id="video{i}" src="/video/{i}.mjpg" alt="source {i}">'
        f'<figcaption><b>{i}</b> {html.escape(name)} <span class="num" id="num{i}">connecting</span>'
        "</figcaption></figure>"
        for i, name in enumerate(names)
    )
    title = html.escape(f"PEM-RT live: {meta.name} {meta.task} {meta.input_height}x{meta.input_width}")
    return _PAGE.format(title=title, tiles=tiles, legend=_legend(meta))


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ margin: 0; font: 14px system-ui, sans-serif; background: #111; color: #eee; display: flex; }}
main {{ flex: 1; display: flex; flex-wrap: wrap; gap: 8px; padding: 8px; align-content: flex-start; }}
.tile {{ margin: 0; flex: 1 1 480px; max-width: 100%; }}
.tile img {{ width: 100%; display: block; background: #222; }}
figcaption {{ padding: 4px 0; }} .num {{ color: #9f9; font-variant-numeric: tabular-nums; }}
aside {{ width: 220px; padding: 8px; background: #1b1b1b; }} h1 {{ font-size: 15px; }}
ul {{ list-style: none; padding: 0; margin: 0; }} li {{ padding: 1px 0; }}
li.off {{ color: #777; }} .sw {{ display: inline-block; width: 12px; height: 12px; margin-right: 6px; }}
</style></head>
<body><main id="tiles">
{tiles}
</main><aside><h1 id="model">{title}</h1><ul id="legend">
{legend}
</ul></aside>
<script>
async function refresh() {{
  try {{
    const s = await (await fetch('/stats', {{cache: 'no-store'}})).json();
    const seen = {{}};
    for (const src of s.sources) {{
      document.getElementById('num' + src.index).textContent =
        `${{src.fps.toFixed(1)}} FPS, latency ${{src.latency_ms.toFixed(0)}} ms, ` +
        `${{src.frames}} frames, dropped ${{src.dropped}}`;
      for (const [name, share] of Object.entries(src.classes)) seen[name] = Math.max(seen[name] || 0, share);
    }}
    for (const li of document.querySelectorAll('#legend li')) {{
      const share = seen[li.dataset.class];
      li.className = share ? '' : 'off';
      li.querySelector('.share').textContent = share ? (100 * share).toFixed(1) + ' %' : '';
    }}
  }} catch (e) {{ }}
}}
setInterval(refresh, 500); refresh();
</script></body></html>
"""
