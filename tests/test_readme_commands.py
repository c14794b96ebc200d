"""The README and docs/ cannot drift from the code: every `python -m train`, `python -m core`, `python build_addon.py`
and `torchrun ... -m train` command in their code blocks parses with today's argument parsers (the quick ones are also
run: `make demo` by .ci/run, the add-on build and a CLI generate by tests)."""
import importlib.util
import re
import shlex
from pathlib import Path

import pytest

from core.__main__ import build_parser as core_parser
from train.__main__ import build_parser as train_parser

ROOT = Path(__file__).resolve().parents[1]


def _build_addon_parser():
    spec = importlib.util.spec_from_file_location("build_addon", ROOT / "build_addon.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def readme_commands() -> list[list[str]]:
    text = "\n".join(p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))])
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words[:1] in (["python"], ["torchrun"]):
                commands.append(words)
    return commands


COMMANDS = readme_commands()


def test_the_readme_shows_the_main_commands():
    text = " ".join(" ".join(c) for c in COMMANDS)
    for needed in ("build_addon.py", "-m core generate", "-m train export", "-m train texture", "torchrun"):
        assert needed in text


@pytest.mark.parametrize("words", COMMANDS, ids=[" ".join(c)[:60] for c in COMMANDS])
def test_readme_command_parses(words):
    if words[0] == "torchrun":
        words = words[words.index("-m"):]  # torchrun's own options, then the module and its arguments
    else:
        words = words[1:]
    if words[:2] == ["-m", "train"]:
        train_parser().parse_args(words[2:])
    elif words[:2] == ["-m", "core"]:
        core_parser().parse_args(words[2:])
    elif words[0] == "build_addon.py":
        _build_addon_parser().parse_args(words[1:])
    elif words[:2] == ["-m", "bench"] or words[1].startswith("bench."):
        pass  # benchmarks: run by hand, their options documented in bench/README.md
    else:
        pytest.fail(f"a README command no test knows: {' '.join(words)}")


def test_readme_numbers_are_not_dated_by_work_history():
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = path.read_text().lower()
        for phrase in ("session", "last time", "this week"):
            assert phrase not in text, f"{path.name}: dates numbers by work history ({phrase!r}); use a version or commit"
