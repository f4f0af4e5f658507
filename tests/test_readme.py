"""The README's commands stay true: every `pem` command line parses with that command's own parser (so a
renamed or removed flag fails here), torchrun lines parse with training/train.py's, and the Polygraphy
recipes point at files that exist. The commands are run for real by the demo (pem_rt/demo.py) and the
tests of each command; this keeps the README's spelling of them honest."""

from __future__ import annotations

import importlib
import shlex
from pathlib import Path

import pytest

from pem_rt.cli import COMMANDS

README = Path(__file__).resolve().parents[1] / "README.md"


def command_lines() -> list[list[str]]:
    """Shell lines of the README's bash blocks, continuations joined, comments dropped."""
    lines: list[list[str]] = []
    in_block, pending = False, ""
    for raw in README.read_text().splitlines():
        if raw.startswith("```"):
            in_block = raw.startswith("```bash") and not in_block
            continue
        if not in_block:
            continue
        line = pending + raw.split(" #")[0].strip()
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        pending = ""
        if line:
            lines.append(shlex.split(line))
    return lines


PEM_LINES = [c for c in command_lines() if c[0].endswith("pem")]


def test_readme_has_the_two_setup_commands() -> None:
    assert [c for c in command_lines() if c[0] == "make"] == [["make", "demo"], ["make", "test"]]
    assert "make test" in (README.parent / ".ci" / "run").read_text()


@pytest.mark.parametrize("words", PEM_LINES, ids=[" ".join(c[1:3]) for c in PEM_LINES])
def test_pem_command_parses(words: list[str]) -> None:
    name, args = words[1], words[2:]
    assert name in COMMANDS, f"README uses `pem {name}`, which does not exist"
    module = importlib.import_module(COMMANDS[name][0])
    if name == "build-engine" and args[:1] == ["inspect"]:
        parser = module._inspect_parser()
        args = args[1:]
    else:
        parser = module.build_parser()
    parser.parse_args(args)  # argparse exits (SystemExit) on an unknown or malformed flag


def test_torchrun_lines_parse() -> None:
    from training.train import build_parser

    runs = [c for c in command_lines() if c[0] == "torchrun"]
    assert runs
    for words in runs:
        script = next(i for i, w in enumerate(words) if w.endswith(".py"))
        assert (README.parent / words[script]).is_file()
        build_parser().parse_args(words[script + 1 :])


def test_polygraphy_recipes_name_real_files() -> None:
    runs = [c for c in command_lines() if c[0].endswith("polygraphy")]
    assert len(runs) >= 3
    for words in runs:
        if "--data-loader-script" in words:
            assert (README.parent / words[words.index("--data-loader-script") + 1]).is_file()
