"""Every output path is checked before the work starts: a folder given for a file, a file given for a
folder, or a path under a file is one line naming the flag, before any model loads or frame streams."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


def _main(command: str) -> Callable[[Sequence[str]], int]:
    import importlib

    from pem_rt.cli import COMMANDS

    return importlib.import_module(COMMANDS[command][0]).main  # type: ignore[no-any-return]


def cases(tmp: Path) -> dict[str, tuple[str, list[str], str]]:
    folder, afile = tmp / "folder", tmp / "afile"
    folder.mkdir()
    afile.write_text("x")
    missing_model = str(tmp / "no-such-model.onnx")
    return {
        "stream-metrics-folder": ("stream", ["--source", "synthetic:64x128", "--onnx", missing_model,
                                             "--headless", "--metrics", str(folder)], "--metrics"),
        "stream-record-under-file": ("stream", ["--onnx", missing_model, "--headless", "--record",
                                                str(afile / "x.mp4")], "--record"),
        "stream-masks-is-file": ("stream", ["--onnx", missing_model, "--headless", "--save-masks",
                                            str(afile)], "--save-masks"),
        "build-engine-out-under-file": ("build-engine", ["--fp32", "--onnx", "{ref}", "--target", "sm86",
                                                         "--out", str(afile / "m.engine")], "--out"),
        "build-engine-out-folder": ("build-engine", ["--fp32", "--onnx", "{ref}", "--target", "sm86",
                                                     "--out", str(folder)], "--out"),
        "calibrate-cache-under-file": ("calibrate", ["--onnx", "{ref}", "--calib-data", "skimage",
                                                     "--calib-cache", str(afile / "c.calib")],
                                       "--calib-cache"),
        "export-out-under-file": ("export", ["--random-weights", "--preset", "cityscapes-tiny", "--size",
                                             "64x128", "--out", str(afile / "m.onnx")], "--out"),
        "surgery-out-folder": ("surgery", ["--onnx", "{ref}", "--out", str(folder)], "--out"),
        "compare-out-is-file": ("compare", ["--random-weights", "--preset", "cityscapes-tiny", "--size",
                                            "64x128", "--out", str(afile)], "--out"),
        "triton-repo-is-file": ("triton-repo", ["{ref}", "--repo", str(afile)], "--repo"),
        "train-out-is-file": ("train", ["--preset", "cityscapes-tiny", "--data", str(tmp), "--out",
                                        str(afile)], "--out"),
    }  # fmt: skip


CASES = [
    "stream-metrics-folder", "stream-record-under-file", "stream-masks-is-file",
    "build-engine-out-under-file",
    "build-engine-out-folder", "calibrate-cache-under-file", "export-out-under-file", "surgery-out-folder",
    "compare-out-is-file", "triton-repo-is-file", "train-out-is-file",
]  # fmt: skip


@pytest.mark.parametrize("case", CASES)
def test_bad_output_path_is_one_line_before_any_work(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pem_rt.lineage import REFERENCE, Lineage
    from tests.fuzz.targets import _meta
    from tests.trust.test_lineage import graph

    # PEM metadata on a graph that is no PEM model: any work beyond the checks would fail later
    ref = graph(tmp_path / "ref" / "m.onnx", Lineage(REFERENCE), _meta().to_props())
    command, args, flag = cases(tmp_path)[case]
    args = [a.replace("{ref}", str(ref)) for a in args]
    code = _main(command)(args)
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith(f"error: {flag} ") and err.count("\n") == 1, err
    assert sorted(p.name for p in (tmp_path / "ref").iterdir()) == ["m.onnx"]  # nothing written
