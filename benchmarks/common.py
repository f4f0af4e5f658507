"""Shared helpers of the benchmarks: timing (medians), machine description, peak memory in a subprocess."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"


def median_ms(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def machine() -> dict[str, Any]:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def peak_rss_mb_in_subprocess(code: str) -> float:
    """Extra peak resident memory (MB) of running ``code`` in a fresh interpreter, over its baseline.

    ``code`` defines ``setup()`` (builds the inputs) and ``run(state)``. ``run`` is called once before
    measuring, so one-time buffers (BLAS packing, thread pools) do not count: what is measured is what
    every further call costs. The kernel's high-water mark (VmHWM) is then reset
    (``/proc/self/clear_refs``), so import-time and warm-up peaks do not hide the run's.
    """
    script = f"""
import json
{code}
def _kb(field):
    for line in open("/proc/self/status"):
        if line.startswith(field):
            return int(line.split()[1])
state = setup()
run(state)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = _kb("VmRSS:")
run(state)
print(json.dumps({{"extra_kb": _kb("VmHWM:") - base}}))
"""
    # a fixed mmap threshold: glibc then maps every block >= 64 KiB afresh and unmaps it on free, instead of
    # raising the threshold after the warm-up and serving the next call from memory it kept (uncounted)
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": "65536"}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env)
    return float(json.loads(out.stdout.strip().splitlines()[-1])["extra_kb"]) / 1024


def save_json(name: str, data: Any) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    from pem_rt.files import atomic_write_text

    return atomic_write_text(RESULTS / f"{name}.json", json.dumps(data, indent=2) + "\n")
