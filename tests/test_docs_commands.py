"""Every ``occau ...`` command in the docs and in the real-data configs' ``Run:`` comments is checked against the CLI
and the configs, so a renamed flag, config or config key breaks CI instead of a user.

Each command is parsed exactly as ``occau`` parses it; ``occau train`` commands also load their config with their
overrides (unknown keys, bad values and misspelt ``init`` roles fail there), ``occau bench`` commands load their
preset. Shell variables must be defined in the same code block (a loop variable or an assignment), so every block
can be pasted on its own.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from occau.cli import build_parser, parse
from occau.commands.evaluate import resolve_dataset
from occau.training.config import load_config, packaged_configs

REPO = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/real_data.md", "docs/datasets.md", "docs/detect.md")
MIN_COMMANDS = {"docs/real_data.md": 14, "docs/datasets.md": 5, "docs/detect.md": 2, "README.md": 1}
LAUNCHERS = ("srun", "torchrun")  # multi-node launchers that run an occau command
VAR = re.compile(r"\$\{?([A-Za-z_][A-Za-z_0-9]*)\}?")


def _logical_lines(block: str) -> list[str]:
    """Lines of a shell block with backslash continuations joined."""
    return block.replace("\\\n", " ").splitlines()


def commands_in_markdown(text: str) -> list[tuple[str, list[str]]]:
    """``(command line, argv after 'occau')`` for every occau command of every fenced code block, with the block's
    own shell variables substituted (a loop variable takes its first value)."""
    found = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        defined: dict[str, str] = {}
        for line in _logical_lines(block):
            for segment in re.split(r"&&|;", line):
                words = shlex.split(segment, comments=True)
                if words[:1] == ["for"] and len(words) >= 4 and words[2] == "in":
                    defined[words[1]] = words[3]
                elif words and re.fullmatch(r"[A-Za-z_]\w*=.*", words[0]) and len(words) == 1:
                    defined[words[0].split("=")[0]] = "value"
                elif "occau" in words and (words[0] == "occau" or words[0] in LAUNCHERS):
                    start = words.index("occau") + 1  # after `srun` or `torchrun ... -m`
                    found.append((segment.strip(), _substitute(segment, words[start:], defined)))
    return found


def split_synopsis(argv: list[str]) -> tuple[list[str], list[str]]:
    """A synopsis line's ``[--flag VALUE]`` groups: (argv without them, the flags they name)."""
    kept, optional, depth = [], [], 0
    for word in argv:
        if word.startswith("[") and depth == 0:
            optional.append(word.lstrip("[").split("=")[0].rstrip("]"))
        depth += word.count("[") - word.count("]")
        if not (word.startswith("[") or depth > 0 or word.endswith("]")):
            kept.append(word)
    return kept, optional


def _substitute(segment: str, argv: list[str], defined: dict[str, str]) -> list[str]:
    undefined = sorted({m for m in VAR.findall(segment) if m not in defined})
    assert not undefined, f"{segment!r} uses ${undefined} that its code block does not define"
    return [VAR.sub(lambda m: defined[m.group(1)], a) for a in argv]


def commands_in_configs() -> list[tuple[str, list[str]]]:
    """The ``# Run: occau ...`` comment of every packaged stage config (DATA stands for the prepared folder)."""
    found = []
    root = REPO / "src" / "occau" / "configs"
    for name in packaged_configs():
        text = (root / name).read_text()
        comments = "\n".join(line[1:].strip() for line in text.splitlines() if line.startswith("#"))
        for line in _logical_lines(comments):
            if "Run: occau " in line:
                command = line.split("Run: ", 1)[1].replace("DATA", "data/bp4d")
                found.append((f"{name}: {command}", shlex.split(command)[1:]))
    return found


def _check(argv: list[str], where: str) -> None:
    argv, optional = split_synopsis(argv)
    try:
        args = parse(argv)
    except SystemExit as err:
        raise AssertionError(f"{where}: occau rejects the command line (exit {err.code})") from None
    flags = {f for a in _subparser(argv)._actions for f in a.option_strings}
    assert set(optional) <= flags, f"{where}: no such option(s) {sorted(set(optional) - flags)}"
    if args.command == "train":
        load_config(args.config, args.overrides)  # config name, keys, values and init roles
    elif args.command == "bench" and args.dataset != "synth":
        from occau.benchmark import load_bench_config

        load_bench_config(args.preset, args.overrides)
    elif args.command == "evaluate" and args.data:
        assert args.dataset, f"{where}: --data without --dataset"


def _subparser(argv: list[str]):
    """The parser of the (sub)command that ``argv`` runs, e.g. ``convert mae``."""
    parser = build_parser()
    for word in argv:
        choices = next((a.choices for a in parser._actions if isinstance(a.choices, dict)), None)
        if not choices or word not in choices:
            break
        parser = choices[word]
    return parser


def _all_commands() -> list[tuple[str, str, list[str]]]:
    out = [(doc, line, argv) for doc in DOCS for line, argv in commands_in_markdown((REPO / doc).read_text())]
    return out + [("configs", line, argv) for line, argv in commands_in_configs()]


@pytest.mark.parametrize("doc,line,argv", _all_commands(), ids=lambda v: v if isinstance(v, str) and len(v) < 60 else None)
def test_documented_command_is_accepted(doc: str, line: str, argv: list[str]) -> None:
    _check(argv, f"{doc}: {line}")


def test_every_doc_has_its_commands_found() -> None:
    for doc, least in MIN_COMMANDS.items():
        assert len(commands_in_markdown((REPO / doc).read_text())) >= least, doc
    assert len(commands_in_configs()) == len(packaged_configs())


def test_checker_catches_what_it_is_for() -> None:
    """The checks fail on a renamed flag, a misspelt config, a misspelt init role and a variable from another block."""
    bad = [
        ["prepare", "bp4d", "--rooot", "x", "--out", "y"],
        ["train", "real/bp4d_teacher_stage1.yaml", "--out", "x"],
        ["train", "real/bp4d_mae_vitb_faces.yaml", "--out", "x", "init.mea=m.pth"],
        ["evaluate", "--data", "data/bp4d", "--method", "t=teacher:t.safetensors", "--out", "r"],
    ]
    for argv in bad:
        with pytest.raises((AssertionError, ValueError, FileNotFoundError)):
            _check(argv, " ".join(argv))
    with pytest.raises(AssertionError, match="no such option"):
        _check(["detect", "a.jpg", "--checkpoint", "c", "--out", "r.csv", "[--batchsize", "16]"], "synopsis")
    assert split_synopsis(["detect", "a.jpg", "[--occlusion", "auto|none]", "[--quiet]"]) == (["detect", "a.jpg"],
                                                                                         ["--occlusion", "--quiet"])
    with pytest.raises(AssertionError, match=r"\['CFG'\]"):
        commands_in_markdown("```bash\noccau train $CFG/x.yaml --out y\n```\n")
    loop = "```bash\nfor f in 1 2 3; do\n  occau train real/bp4d_student_vitb.yaml --out runs/fold$f \\\n  data.fold=$f\ndone\n```"
    assert commands_in_markdown(loop)[0][1] == ["train", "real/bp4d_student_vitb.yaml", "--out", "runs/fold1", "data.fold=1"]


def test_config_paths_named_in_help_exist() -> None:
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    named = {m for p in subparsers.values() for m in re.findall(r"real/\w+\.yaml", p.format_help())}
    assert named, "no packaged config is named in any --help"
    assert named <= set(packaged_configs()), named - set(packaged_configs())


def test_evaluate_reads_the_dataset_from_a_prepared_folder(tmp_path: Path) -> None:
    (tmp_path / "prepare.json").write_text(json.dumps({"dataset": "bp4d"}))
    assert resolve_dataset(None, str(tmp_path)) == "bp4d"
    with pytest.raises(ValueError, match="says the folder holds bp4d"):
        resolve_dataset("disfa", str(tmp_path))
    with pytest.raises(ValueError, match="needs --data DIR"):
        resolve_dataset("bp4d", None)
    assert resolve_dataset(None, str(tmp_path / "synth-cache")) == "synth-bp4d"
