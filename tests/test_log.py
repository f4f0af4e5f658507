"""Quiet by default: one project logger, third-party repeats counted into one line each, harmless
no-GPU messages dropped, everything with verbose; loggers (the root one included) are given back as
they were; TensorRT's own logger and its direct prints go through the same counter."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from pem_rt.log import RepeatCounter, configure, get_logger, library_messages


def test_repeats_are_counted_into_one_line_each_and_errors_come_at_once() -> None:
    lines: list[str] = []
    counter = RepeatCounter(lines.append, gpu=True)
    for i in range(49):
        counter("TensorRT", "WARNING", f"(foreignNode) Converting conv weight scales to fp32 in layer_{i}.")
    counter("TensorRT", "WARNING", "in op node_clamp_min_3_min, operand node_clamp_min_3_beta needs a cast")
    counter("TensorRT", "WARNING", "in op node_clamp_min_min, operand node_clamp_min_beta needs a cast")
    counter("TensorRT", "ERROR", "something broke")
    assert lines == ["TensorRT error: something broke"]
    summary = counter.summary()
    assert len(summary) == 2 and summary[0].endswith("[49x]") and "Converting conv weight" in summary[0]
    assert summary[1].endswith("[2x]") and "node_clamp_min_3_min" in summary[1]


def test_harmless_messages_are_dropped_only_without_a_gpu_and_verbose_shows_all() -> None:
    lines: list[str] = []
    RepeatCounter(lines.append, gpu=False)("modelopt", "ERROR", "Failed to get GPU count: NVML not found")
    assert lines == []
    RepeatCounter(lines.append, gpu=True)("modelopt", "ERROR", "Failed to get GPU count: NVML not found")
    assert len(lines) == 1
    loud = RepeatCounter(lines.append, verbose=True, gpu=False)
    for _ in range(3):
        loud("TensorRT", "WARNING", "same")
    assert len(lines) == 4 and loud.summary() == []


def test_library_loggers_and_the_root_logger_are_restored() -> None:
    lib = logging.getLogger("somelib.sub")
    original = logging.StreamHandler(sys.stderr)
    lib.addHandler(original)
    lib.setLevel(logging.INFO)
    root = logging.getLogger()
    before = (list(root.handlers), root.level)
    lines: list[str] = []
    with library_messages(False, "somelib", "root", emit=lines.append) as counter:
        for _ in range(5):
            lib.warning("weights rounded")
        logging.warning("a library logging through the root logger")
        logging.getLogger("somelib").info("info is below the default threshold")
        assert counter.counts
    assert lines == [
        "somelib warning: weights rounded [5x]",
        "root warning: a library logging through the root logger",
    ]
    assert lib.handlers == [original] and lib.level == logging.INFO and lib.propagate
    assert (list(root.handlers), root.level) == before
    lib.removeHandler(original)


def test_project_logger_has_one_handler_and_never_propagates() -> None:
    logger = configure()
    configure(verbose=True, stderr=True)
    assert [h.get_name() for h in logger.handlers] == ["pem_rt-console"] and not logger.propagate
    assert logger.level == logging.DEBUG and get_logger("stream").parent is logger
    assert logger.handlers[0].stream is sys.stderr  # type: ignore[attr-defined]
    configure()
    assert logger.handlers[0].stream is sys.stdout  # type: ignore[attr-defined]


def test_native_prints_go_through_the_counter() -> None:
    """What a C library writes to fd 1 (as TensorRT's builder does) is counted, then fd 1 is restored."""
    code = (
        "import os, sys\n"
        "from pem_rt.log import RepeatCounter, native_output\n"
        "lines = []\n"
        "c = RepeatCounter(lines.append, gpu=True)\n"
        "with native_output(c, 'TensorRT'):\n"
        "    for i in range(9):\n"
        "        os.write(1, f'WARNING: in op node_{i}_min, operand node_{i}_beta needs a cast\\n'.encode())"
        "\n"
        "print('after:', c.summary())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ})  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "after: ['TensorRT warning: in op node_0_min, operand node_0_beta needs a cast [9x]']"
    ]


def test_tensorrt_logger_feeds_the_counter() -> None:
    from pem_rt.trt import load_tensorrt

    trt = load_tensorrt("tensorrt_rtx")
    lines: list[str] = []
    counter = RepeatCounter(lines.append, gpu=True)
    logger = trt.logger(False, counter)
    logger.log(trt.module.ILogger.Severity.WARNING, "a warning")
    logger.log(trt.module.ILogger.Severity.WARNING, "a warning")
    logger.log(trt.module.ILogger.Severity.INFO, "below the threshold")
    builder = trt.module.Builder(logger)  # TensorRT itself logs through it
    assert builder is not None
    assert counter.summary()[0] == "TensorRT-RTX warning: a warning [2x]"
