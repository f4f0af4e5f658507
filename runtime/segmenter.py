"""``runtime.Segmenter``: one frame in, a label map at the frame's size out. The CLI is built on it.

from runtime import Segmenter
seg = Segmenter("runs/x/model.onnx")          # or an .engine; None = chosen by lineage under runs/
result = seg(frame)                           # frame: BGR uint8 [H, W, 3], any size
result.labels                                 # uint8 [H, W] class ids, 255 = void
result.panoptic, result.segments              # panoptic models: int32 segment ids + their classes
results = seg.run_batch([seg.prepare(f) for f in frames])   # several frames in one inference call
for frame, result in seg.stream("rtsp://cam/live"): ...     # the stream loop as an iterator (or callback=)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

import numpy as np

from pem_rt.letterbox import Letterbox, Placement
from pem_rt.model_meta import ModelMeta
from pem_rt.segments import VOID, Segment
from runtime.backends import Backend, BackendOptions, open_backend
from runtime.panoptic import assemble_panoptic

if TYPE_CHECKING:
    from runtime.metrics import StreamMetrics
    from runtime.sources import Source

ENGINE_SUFFIXES = (".engine", ".plan")


@dataclass
class Prepared:
    """A frame fitted to the model input: ``batch`` uint8 [1, H, W, 3], where the frame sits in it, and the
    milliseconds that took."""

    batch: np.ndarray
    placement: Placement
    ms: float


@dataclass
class Result:
    """One frame's segmentation at the frame's resolution.

    Args:
        labels: uint8 [H, W] class ids (the dataset's contiguous ids, e.g. Cityscapes trainIds), 255 = void.
        panoptic: int32 [H, W] segment ids (0 = void) for panoptic models, else None.
        segments: the segments of ``panoptic`` (id, class, thing or stuff), else None.
        timings: milliseconds spent in preprocess, infer and postprocess.
    """

    labels: np.ndarray
    panoptic: np.ndarray | None = None
    segments: list[Segment] | None = None
    timings: dict[str, float] = field(default_factory=dict)


class Segmenter:
    """Run a deployable PEM model on frames of any size.

    Args:
        model: an ``.engine`` (TensorRT, checked against its sidecar) or ``.onnx`` (ONNX Runtime); None
            picks by lineage under runs/: the reference graph or its engine (``PEM_RUNS`` overrides); a
            ``grpc://HOST:PORT/MODEL`` string runs it on a Triton Inference Server (`pem triton-repo`).
        backend: auto (TensorRT for engines, falling back to ONNX Runtime where there is no GPU),
            tensorrt or onnxruntime.
        provider: ONNX Runtime provider: auto, cpu or cuda.
        resize: how frames meet the model's static input size: letterbox, stretch or none
            (pem_rt/letterbox.py).
        plugins: TensorRT plugin library for engines that do not embed it.
        cuda_graph: replay CUDA graphs with TensorRT.
        threads: ONNX Runtime intra-op threads (0 = one per core).
        log: where one-line notices go (backend choice, fallback).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        backend: str = "auto",
        provider: str = "auto",
        resize: str = "letterbox",
        plugins: str | Path | None = None,
        cuda_graph: bool = True,
        threads: int = 0,
        log: Callable[[str], None] = print,
    ) -> None:
        if isinstance(model, str) and model.startswith("grpc://"):
            self._setup(open_backend(triton=model, log=log), resize)
            return
        path = Path(model) if model is not None else None
        is_engine = path is not None and path.suffix in ENGINE_SUFFIXES
        options = BackendOptions(
            backend, provider, Path(plugins) if plugins is not None else None, cuda_graph, threads
        )
        opened = open_backend(
            engine=path if is_engine else None,
            onnx=path if path is not None and not is_engine else None,
            options=options,
            log=log,
        )
        self._setup(opened, resize)

    @classmethod
    def from_backend(cls, backend: Backend, resize: str = "letterbox") -> Segmenter:
        """Wrap an already opened backend (benchmarks compare the two on the same backend)."""
        seg = cls.__new__(cls)
        seg._setup(backend, resize)
        return seg

    def _setup(self, backend: Backend, resize: str) -> None:
        self.backend = backend
        self.meta: ModelMeta = backend.meta
        mean_bgr = tuple(round(v) for v in reversed(self.meta.pixel_mean))
        self.letterbox = Letterbox(self.input_size, resize, mean_bgr)

    @property
    def input_size(self) -> tuple[int, int]:
        return self.meta.input_height, self.meta.input_width

    @property
    def name(self) -> str:
        return self.backend.name

    def __call__(self, frame: np.ndarray) -> Result:
        return self.run(self.prepare(frame))

    def prepare(self, frame: np.ndarray) -> Prepared:
        """Fit ``frame`` to the model input (thread-safe: the stream does this in its capture thread)."""
        start = time.perf_counter()
        image, placement = self.letterbox.apply(frame)
        batch = np.ascontiguousarray(image)[None]
        return Prepared(batch, placement, (time.perf_counter() - start) * 1e3)

    @property
    def max_batch(self) -> int:
        """Most frames one inference call takes (0 = any number; a static-batch model: its batch)."""
        return self.backend.max_batch

    def run(self, prepared: Prepared) -> Result:
        """Inference and post-processing of a prepared frame (one thread at a time per Segmenter)."""
        if self.meta.batch > 1:
            return self.run_batch([prepared])[0]
        t1 = time.perf_counter()
        outputs = self.backend.infer(prepared.batch)
        t2 = time.perf_counter()
        result = self.postprocess(outputs, prepared.placement)
        t3 = time.perf_counter()
        result.timings = {
            "preprocess": prepared.ms,
            "infer": (t2 - t1) * 1e3,
            "postprocess": (t3 - t2) * 1e3,
        }
        return result

    def run_batch(self, prepared: Sequence[Prepared], max_batch: int | None = None) -> list[Result]:
        """Several prepared frames through the model in as few calls as it allows, results in order.

        A dynamic-batch model takes them in one call (in calls of ``max_batch`` where the engine's profile
        caps it); a static-batch model in calls of exactly its batch, the last one padded by repeating its
        last frame (the padding's outputs are dropped). ``max_batch`` lowers the limit (1: one frame per
        call, how the batching benchmark compares). Each result's ``infer`` timing is its call's.
        """
        limit = min(v for v in (self.max_batch, max_batch, len(prepared)) if v) if prepared else 1
        results: list[Result] = []
        for start in range(0, len(prepared), limit):
            chunk = prepared[start : start + limit]
            frames = [p.batch for p in chunk]
            if self.meta.batch > len(chunk):
                frames += [chunk[-1].batch] * (self.meta.batch - len(chunk))
            t1 = time.perf_counter()
            outputs = self.backend.infer(np.concatenate(frames) if len(frames) > 1 else frames[0])
            infer_ms = (time.perf_counter() - t1) * 1e3
            for k, p in enumerate(chunk):
                t2 = time.perf_counter()
                result = self.postprocess({name: v[k : k + 1] for name, v in outputs.items()}, p.placement)
                post_ms = (time.perf_counter() - t2) * 1e3
                result.timings = {"preprocess": p.ms, "infer": infer_ms, "postprocess": post_ms}
                results.append(result)
        return results

    def postprocess(self, outputs: dict[str, np.ndarray], placement: Placement) -> Result:
        """Graph outputs for one frame (batch of 1) -> a :class:`Result` at the frame's size."""
        if self.meta.task == "semantic":
            return Result(Letterbox.unmap(outputs["labels"][0], placement))
        segment_map, segments = assemble_panoptic(
            outputs["query_labels"][0],
            outputs["winner"][0],
            outputs["winner_area"][0],
            outputs["mask_area"][0],
            self.meta.thing_ids,
            self.meta.overlap_threshold,
        )
        lut = np.full(len(segments) + 1, VOID, dtype=np.uint8)
        for s in segments:
            lut[s.id] = s.category_id
        labels = lut[segment_map]
        return Result(Letterbox.unmap(labels, placement), Letterbox.unmap(segment_map, placement), segments)

    @overload
    def stream(
        self, source: Source | str | int, callback: None = None, **options: Any
    ) -> Iterator[tuple[np.ndarray, Result]]: ...

    @overload
    def stream(
        self, source: Source | str | int, callback: Callable[[np.ndarray, Result], object], **options: Any
    ) -> StreamMetrics: ...

    def stream(
        self,
        source: Source | str | int,
        callback: Callable[[np.ndarray, Result], object] | None = None,
        **options: Any,
    ) -> Iterator[tuple[np.ndarray, Result]] | StreamMetrics:
        """Segment a whole stream with the CLI's loop (capture thread, newest frames, reconnect).

        Args:
            source: what ``--source`` takes ("rtsp://...", a file or folder, "synthetic"), a camera index,
                or a :class:`runtime.sources.Source`.
            callback: called with (frame, result) for each frame until the end, then the metrics are
                returned; without it, an iterator of (frame, result) pairs.
            options: ``max_frames``, ``realtime``, ``reconnect_timeout``, ``log``
                (:class:`runtime.streaming.StreamOptions`).
        """
        from runtime.streaming import StreamOptions, iterate, run_callback

        settings = StreamOptions(**options)
        if callback is not None:
            return run_callback(self, source, callback, settings)
        return iterate(self, source, settings)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Segmenter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
