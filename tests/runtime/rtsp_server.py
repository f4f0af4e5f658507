"""A real RTSP server on 127.0.0.1 for the stream tests: ffmpeg encodes, this module speaks RTSP.

ffmpeg cannot serve RTSP to pulling clients by itself: ``-rtsp_flags listen`` exists only on its RTSP
*demuxer* (it accepts a pushed stream), not on the muxer. So ffmpeg (the imageio-ffmpeg wheel's binary)
encodes a looping clip as Motion-JPEG RTP packets (RFC 2435, every frame a keyframe, so a client can join
at any time) to a UDP port on 127.0.0.1, and this server answers OPTIONS / DESCRIBE (ffmpeg's own SDP) /
SETUP (RTP over the RTSP TCP connection, interleaved channels 0-1) / PLAY / TEARDOWN and relays the
packets to every playing client. ``stop()`` kills ffmpeg and drops every connection, like a crashed
camera; ``start()`` again on the same port brings it back. Loopback only; everything stops by itself.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _udp_pair() -> tuple[socket.socket, socket.socket, int]:
    """Two UDP sockets on consecutive ports (RTP, RTCP) on 127.0.0.1."""
    for _ in range(50):
        rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rtp.bind(("127.0.0.1", 0))
        port = rtp.getsockname()[1]
        rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            rtcp.bind(("127.0.0.1", port + 1))
        except OSError:
            rtp.close()
            rtcp.close()
            continue
        return rtp, rtcp, port
    raise RuntimeError("no consecutive UDP ports free on 127.0.0.1")


class RtspServer:
    """Serve ``clip`` (looped, at its own frame rate) as rtsp://127.0.0.1:PORT/live."""

    def __init__(self, clip: Path, ffmpeg: str, port: int | None = None, workdir: Path | None = None) -> None:
        self.clip, self.ffmpeg = clip, ffmpeg
        self.port = port or free_port()
        self.workdir = workdir or clip.parent
        self.url = f"rtsp://127.0.0.1:{self.port}/live"
        self.frames_sent = 0  # RTP packets with the marker bit (= last packet of a frame) relayed
        self._session_ids = itertools.count(1000)
        self._running = False

    # lifecycle -------------------------------------------------------------------------------------
    def start(self, timeout: float = 15.0) -> None:
        self._rtp, self._rtcp, rtp_port = _udp_pair()
        self._rtp.settimeout(0.2)
        sdp = self.workdir / f"rtsp_{self.port}.sdp"
        sdp.unlink(missing_ok=True)
        self._ffmpeg = subprocess.Popen(
            [
                self.ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin",
                "-re", "-stream_loop", "-1", "-i", str(self.clip),
                "-an", "-c:v", "mjpeg", "-huffman", "default", "-pix_fmt", "yuvj420p", "-q:v", "4",
                "-f", "rtp", "-sdp_file", str(sdp),
                f"rtp://127.0.0.1:{rtp_port}?rtcpport={rtp_port + 1}&pkt_size=1200",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not (sdp.exists() and sdp.stat().st_size > 0):
            if self._ffmpeg.poll() is not None or time.monotonic() > deadline:
                err = self._ffmpeg.stderr.read().decode(errors="replace") if self._ffmpeg.stderr else ""
                self._ffmpeg.kill()
                raise RuntimeError(f"ffmpeg did not start: {err[-500:]}")
            time.sleep(0.05)
        time.sleep(0.1)  # the SDP is written before the first packet; let the file settle
        self._sdp = self._describe(sdp.read_text())
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", self.port))
        self._listener.listen(8)
        self._listener.settimeout(0.2)
        self._clients: list[socket.socket] = []
        self._playing: dict[socket.socket, threading.Lock] = {}
        self._lock = threading.Lock()
        self._running = True
        self._threads = [
            threading.Thread(target=self._accept, daemon=True, name="rtsp-accept"),
            threading.Thread(target=self._relay, daemon=True, name="rtsp-relay"),
        ]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        """Kill ffmpeg and drop all connections at once (a crash, not a goodbye)."""
        if not self._running:
            return
        self._running = False
        self._ffmpeg.kill()
        self._ffmpeg.wait(timeout=10)
        with self._lock:
            for c in self._clients:
                with contextlib.suppress(OSError):
                    c.shutdown(socket.SHUT_RDWR)
                c.close()
            self._clients.clear()
            self._playing.clear()
        self._listener.close()
        for t in self._threads:
            t.join(timeout=5)
        self._rtp.close()
        self._rtcp.close()

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # RTSP ------------------------------------------------------------------------------------------
    def _describe(self, sdp: str) -> str:
        """ffmpeg's SDP for the RTP stream, turned into an RTSP session description."""
        lines = ["v=0", "o=- 0 0 IN IP4 127.0.0.1", "s=PEM-RT test stream", "c=IN IP4 0.0.0.0", "t=0 0"]
        lines.append("a=control:*")
        for line in sdp.splitlines():
            if line.startswith("m="):
                parts = line.split()
                parts[1] = "0"
                lines.append(" ".join(parts))
                lines.append("a=control:track0")
            elif line.startswith(("a=rtpmap", "a=fmtp", "a=framerate", "b=")):
                lines.append(line)
        return "\r\n".join(lines) + "\r\n"

    def _accept(self) -> None:
        while self._running:
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, OSError):
                continue
            with self._lock:
                if not self._running:
                    conn.close()
                    return
                self._clients.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True, name="rtsp-client").start()

    def _serve(self, conn: socket.socket) -> None:
        buffer = b""
        session = str(next(self._session_ids))
        conn.settimeout(0.5)
        try:
            while self._running:
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    continue
                if not chunk:
                    return
                buffer += chunk
                while buffer:
                    if buffer[:1] == b"$":  # interleaved RTCP from the client: skip it
                        if len(buffer) < 4:
                            break
                        size = struct.unpack("!H", buffer[2:4])[0]
                        if len(buffer) < 4 + size:
                            break
                        buffer = buffer[4 + size :]
                        continue
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buffer = buffer[:end].decode(errors="replace"), buffer[end + 4 :]
                    headers = {}
                    for line in head.split("\r\n")[1:]:
                        key, _, value = line.partition(":")
                        headers[key.strip().lower()] = value.strip()
                    length = int(headers.get("content-length", "0"))
                    buffer = buffer[length:]
                    if not self._answer(conn, head.split(" ")[0], headers, session):
                        return
        except OSError:
            return
        finally:
            with self._lock:
                self._playing.pop(conn, None)
                if conn in self._clients:
                    self._clients.remove(conn)
            conn.close()

    def _answer(self, conn: socket.socket, method: str, headers: dict[str, str], session: str) -> bool:
        cseq = headers.get("cseq", "0")
        extra: list[str] = []
        body = ""
        status = "200 OK"
        if method == "OPTIONS":
            extra.append("Public: OPTIONS, DESCRIBE, SETUP, PLAY, TEARDOWN, GET_PARAMETER")
        elif method == "DESCRIBE":
            body = self._sdp
            extra += ["Content-Type: application/sdp", f"Content-Base: {self.url}/"]
        elif method == "SETUP":
            if "TCP" not in headers.get("transport", "").upper():
                status = "461 Unsupported Transport"
            else:
                extra += ["Transport: RTP/AVP/TCP;unicast;interleaved=0-1", f"Session: {session};timeout=60"]
        elif method == "PLAY":
            extra += [f"Session: {session}", "Range: npt=0.000-"]
        elif method in ("GET_PARAMETER", "SET_PARAMETER", "TEARDOWN"):
            extra.append(f"Session: {session}")
        else:
            status = "405 Method Not Allowed"
        reply = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", *extra]
        if body:
            reply.append(f"Content-Length: {len(body.encode())}")
        lock = threading.Lock()
        with self._lock:
            send_lock = self._playing.get(conn, lock)
        with send_lock:
            conn.sendall(("\r\n".join(reply) + "\r\n\r\n" + body).encode())
        if method == "PLAY":
            with self._lock:
                self._playing[conn] = lock
        return method != "TEARDOWN"

    def _relay(self) -> None:
        while self._running:
            try:
                packet = self._rtp.recv(65536)
            except (TimeoutError, OSError):
                continue
            frame_end = len(packet) > 1 and packet[1] & 0x80
            with self._lock:
                targets = list(self._playing.items())
            for conn, lock in targets:
                try:
                    with lock:
                        conn.sendall(b"$\x00" + struct.pack("!H", len(packet)) + packet)
                except OSError:
                    with self._lock:
                        self._playing.pop(conn, None)
            if frame_end and targets:
                self.frames_sent += 1
