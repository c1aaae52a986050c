"""The built wheel: what `pip install` gives a user with no checkout, and `hf-ad` run from it.

The wheel is built offline (`pip wheel --no-deps --no-build-isolation --no-index`, with the installed
setuptools) from a copy of the files pyproject names, so the checkout gets no `build/` folder. The slow
test installs it in a fresh virtual environment that sees the test environment's dependencies through a
`.pth` line instead of downloading them (the README's `pip install -c constraints.txt WHEEL` does that
part), then runs `hf-ad demo` and the README's `accelerate launch -m hf_ad train` lines (one process,
then two) from an empty folder.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from test_readme import TINY, bash_lines, command_words

from hf_ad import constants
from hf_ad.data.generate import GenerateConfig, generate_histories
from hf_ad.sources.q_learning import QLearningConfig

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DATA_FILES = PYPROJECT["tool"]["setuptools"]["data-files"]  # install folder -> globs in the checkout
DATA_PREFIX = f"hf_ad-{constants.VERSION}.data/data/"  # where a wheel keeps its data files
TIMEOUT = 300


def build_wheel(folder: Path) -> Path:
    """Build the wheel from a copy of the package, README, pyproject and the data files; returns its path."""
    source = folder / "source"
    source.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "hf_ad", source / "hf_ad", ignore=shutil.ignore_patterns("__pycache__"))
    for globs in DATA_FILES.values():
        for pattern in globs:
            for file in ROOT.glob(pattern):
                (source / file.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(file, source / file.relative_to(ROOT))
    command = [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation"]
    command += ["--no-index", "--quiet", "--wheel-dir", str(folder / "dist")]
    subprocess.run(command, check=True, capture_output=True, timeout=TIMEOUT)
    (wheel,) = (folder / "dist").glob("*.whl")
    return wheel


def test_the_wheel_ships_the_command_the_card_templates_and_the_demos_checkpoints(tmp_path):
    wheel = zipfile.ZipFile(build_wheel(tmp_path))
    names = set(wheel.namelist())
    assert {"hf_ad/__main__.py", "hf_ad/cli.py", "hf_ad/py.typed"} <= names
    entry_points = wheel.read(f"hf_ad-{constants.VERSION}.dist-info/entry_points.txt").decode()
    assert "hf-ad = hf_ad.cli:main" in entry_points
    for folder in ("model_cards", "dataset_cards", "pretrained/ad-darkroom", "pretrained/ed-darkroom"):
        shipped = [file.name for file in (ROOT / folder).iterdir() if file.is_file()]
        assert constants.MODEL_CONFIG in shipped or folder.endswith("cards")
        for name in shipped:
            assert f"{DATA_PREFIX}share/hf_ad/{folder}/{name}" in names, (
                f"{folder}/{name} is not in the wheel"
            )


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a user's shell: no checkout on PYTHONPATH, no accelerate config, offline hub."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return {**env, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def install_in_fresh_venv(wheel: Path, venv: Path, env: dict[str, str]) -> Path:
    """A new virtual environment with `wheel` installed; its dependencies are the running interpreter's
    (a `.pth` line, nothing downloaded). Returns its `bin/` folder."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=TIMEOUT)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(purelib) / "test_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    # pip runs from the dependencies (the venv has none of its own); --ignore-installed: never touch the
    # test environment's own (editable) hf_ad.
    install = [python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "--quiet"]
    subprocess.run([*install, str(wheel)], check=True, capture_output=True, env=env, timeout=TIMEOUT)
    return venv / "bin"


def run(command: list, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert result.returncode == 0, f"{command} failed:\n{result.stderr[-3000:]}"
    return result


def readme_launch_lines() -> list[tuple[dict[str, str], list[str]]]:
    """The README's `accelerate launch` lines: each one's environment assignments and words."""
    lines = []
    for line in bash_lines((ROOT / "README.md").read_text()):
        words = command_words(line)
        if words[:2] == ["accelerate", "launch"]:
            lines.append(
                (dict(word.split("=", 1) for word in line.split()[: line.split().index(words[0])]), words)
            )
    return lines


def flag_value(words: list[str], flag: str) -> str:
    return words[words.index(flag) + 1]


@pytest.mark.slow
def test_demo_and_accelerate_training_run_from_the_installed_wheel(tmp_path):
    env = clean_env(tmp_path / "home")
    bin_dir = install_in_fresh_venv(build_wheel(tmp_path / "build"), tmp_path / "venv", env)
    work = tmp_path / "work"  # an empty folder: no checkout anywhere near
    work.mkdir()
    where = run([bin_dir / "python", "-c", "import hf_ad; print(hf_ad.__file__)"], work, env).stdout
    assert Path(where.strip()).is_relative_to(tmp_path / "venv")

    demo = run([bin_dir / "hf-ad", "demo", "--episodes", "3", "--out", "demo"], work, env)
    assert "| episode | AD | ED | explorer (from scratch) | oracle |" in demo.stdout  # the recipe's source
    assert "Loading weights" not in demo.stderr
    models = json.loads((work / "demo" / constants.RESULTS_JSON).read_text())["per_checkpoint"]["AD"]
    assert [Path(path) for path in models] == [
        tmp_path / "venv" / "share" / "hf_ad" / "pretrained" / "ad-darkroom"
    ]

    launches = [(env, words) for env, words in readme_launch_lines() if "train" in words]
    assert [flag_value(words, "--num_processes") for _, words in launches] == ["1", "2"]
    dataset, output_dir = flag_value(launches[0][1], "--dataset"), flag_value(launches[0][1], "--output-dir")
    generate_histories(
        GenerateConfig(out=str(work / dataset)),
        QLearningConfig(histories_per_task=1, episodes=6),
        progress=False,
    )
    for number, (assignments, words) in enumerate(launches, start=1):
        # `accelerate launch` is the accelerate package's `accelerate.commands.launch` module; the second
        # line trains into the same folder as the first, so it starts over.
        launch = [bin_dir / "python", "-m", "accelerate.commands.launch", *words[2:], *TINY["train"]]
        trained = run([*launch, "--overwrite"] if number > 1 else launch, work, {**env, **assignments})
        assert "had defaults used instead" not in trained.stderr
        assert trained.stdout.count("final model written to") == 1  # by the main process only
        state = json.loads((work / output_dir / constants.FINAL_DIR / constants.TRAINER_STATE).read_text())
        assert (state["num_processes"], state["step"]) == (number, 2)
