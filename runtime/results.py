"""``--results FILE|-``: one JSON object per processed frame, one per line, for other programs to act on.

    {"time": 1764632000.123, "source": 0, "source_name": "rtsp://cam1/live", "frame": 41,
     "latency_ms": 38.2, "classes": {"road": 0.412, "car": 0.087, ...},
     "segments": [{"id": 1, "class": "car", "isthing": true, "area": 5120, "bbox": [x, y, w, h]}, ...]}

``time`` is the Unix time the frame was captured; ``classes`` the share of the frame's pixels per class
(void left out, largest first); ``segments`` only for panoptic models (bounding boxes in frame pixels,
x/y of the top-left corner). ``-`` writes to stdout (the command's messages then go to stderr; the last
line is its PASSED/FAILED line) and a named pipe is written as it goes: both for programs that act
while the stream runs. A regular file is written to a temporary name and moved into place when the run
ends, so a reader never sees half of it.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import numpy as np

from pem_rt.errors import PemError
from pem_rt.files import atomic_path
from pem_rt.model_meta import ModelMeta
from pem_rt.segments import VOID
from runtime.sinks import Delivered

if TYPE_CHECKING:
    from runtime.segmenter import Result  # types only: segmenter imports the stream loop (Segmenter.stream)

STDOUT = "-"


def class_shares(labels: np.ndarray, classes: tuple[str, ...] | list[str]) -> dict[str, float]:
    """Share of ``labels``' pixels per class name (void left out), largest first, rounded to 4 digits."""
    counts = np.bincount(labels.ravel(), minlength=VOID + 1)
    total = labels.size or 1
    order = np.argsort(-counts[: len(classes)], kind="stable")
    return {classes[k]: round(float(counts[k]) / total, 4) for k in order if counts[k] and k < len(classes)}


def segment_boxes(panoptic: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Area and bounding box [x, y, w, h] of segment ids 1..count in one pass over the map (O(H*W))."""
    ys, xs = np.indices(panoptic.shape)
    ids = panoptic.ravel()
    area = np.bincount(ids, minlength=count + 1)
    big = np.iinfo(np.int64).max
    x0 = np.full(count + 1, big, dtype=np.int64)
    y0 = np.full(count + 1, big, dtype=np.int64)
    x1 = np.full(count + 1, -1, dtype=np.int64)
    y1 = np.full(count + 1, -1, dtype=np.int64)
    np.minimum.at(x0, ids, xs.ravel())
    np.minimum.at(y0, ids, ys.ravel())
    np.maximum.at(x1, ids, xs.ravel())
    np.maximum.at(y1, ids, ys.ravel())
    boxes = np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1], axis=1)
    return area, boxes


def frame_record(item: Delivered, meta: ModelMeta, source_name: str) -> dict[str, Any]:
    """The JSON object of one processed frame."""
    result: Result = item.result
    wall = time.time() - (time.perf_counter() - item.frame.captured)
    record: dict[str, Any] = {
        "time": round(wall, 3),
        "source": item.source,
        "source_name": source_name,
        "frame": item.frame.index,
        "latency_ms": round(item.latency_ms, 2),
        "classes": class_shares(result.labels, meta.classes),
    }
    if result.panoptic is not None and result.segments is not None:
        area, boxes = segment_boxes(result.panoptic, max((s.id for s in result.segments), default=0))
        record["segments"] = [
            {
                "id": s.id,
                "class": meta.classes[s.category_id] if s.category_id < len(meta.classes) else s.category_id,
                "isthing": s.isthing,
                "area": int(area[s.id]),
                "bbox": [int(v) for v in boxes[s.id]],
            }
            for s in result.segments
            if area[s.id]
        ]
    return record


class ResultsWriter:
    """A sink writing :func:`frame_record` lines to ``target`` (a path, or ``-`` for stdout)."""

    wants_overlay = False

    def __init__(self, target: str, meta: ModelMeta, source_names: list[str]) -> None:
        self.meta, self.names = meta, source_names
        self.lines = 0
        self.path: Path | None = None
        self._atomic: contextlib.AbstractContextManager[Path] | None = None
        self._direct = False
        if target == STDOUT:
            self._file: IO[str] = sys.stdout
            return
        self.path = Path(target)
        if self.path.is_fifo() or self.path.is_char_device():  # a pipe another program reads live
            self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())
            self._direct = True
            return
        if self.path.is_dir():
            raise PemError(f"--results {target}: is a folder; pass a file such as results.jsonl, or -")
        self._atomic = atomic_path(self.path)  # the file appears, complete, when the run ends
        try:
            tmp = self._atomic.__enter__()
        except OSError as e:
            raise PemError(f"--results {target}: cannot write there ({e.strerror})") from None
        self._file = open(tmp, "w", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def write(self, item: Delivered) -> None:
        name = self.names[item.source] if item.source < len(self.names) else str(item.source)
        self._file.write(json.dumps(frame_record(item, self.meta, name), separators=(",", ":")) + "\n")
        self._file.flush()
        self.lines += 1

    def close(self) -> None:
        if self._direct:
            self._file.close()
            self._direct = False
        if self._atomic is None:
            return
        self._file.close()
        atomic, self._atomic = self._atomic, None
        atomic.__exit__(None, None, None)
