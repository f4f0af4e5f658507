"""The prototype-selection benchmark on CPU: fused workspace vs the naive similarity tensor."""

from __future__ import annotations

import ctypes

import pytest

from benchmarks import prototype_selection_kernels as bench


def test_cpu_benchmark_prints_the_memory_ratio(
    hostlib: ctypes.CDLL, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(["--scales", "1/32", "1/16", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    print(out)
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("1/")}
    assert rows["1/32"][1] == "2048" and rows["1/16"][1] == "8192"
    assert rows["1/32"][6] == "8x" and rows["1/16"][6] == "32x"  # grows with N: the workspace does not
    assert rows["1/32"][-1] == "yes" and rows["1/16"][-1] == "yes"  # fused == naive output
    assert "bench_prototype_selection: PASSED" in out


def test_ratio_at_one_eighth_scale() -> None:
    rows = bench.run_cpu(["1/8"], repeats=1, time_fused=False)
    assert rows[0].naive_bytes == 1 * 8 * 32768 * 100 * 4  # the 105 MB similarity tensor fusion avoids
    assert rows[0].fused_bytes < 1 << 20  # 128 splits x 8 heads x 100 queries x (float + int32)
    assert rows[0].ratio > 100
