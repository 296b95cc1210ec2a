"""README's Python examples run as written, and its two commands match what CI runs."""
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang):
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_readme_python_blocks_run(capsys):
    blocks = _blocks("python")
    assert blocks, "README has no python examples"
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "12.0 12.0" in out  # the second-derivative example printed its claim


def test_ci_runs_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = next(line for b in _blocks("bash") for line in b.splitlines()
                    if "pytest" in line)
    assert test_cmd.strip() in ci
