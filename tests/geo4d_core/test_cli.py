"""The `geo4d` console script and its plug-in subcommands."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from geo4d_core.cli import main


def _console_script() -> str:
    script = Path(sys.executable).parent / "geo4d"
    if script.exists():
        return str(script)
    found = shutil.which("geo4d")
    assert found, "the geo4d console script is not installed (pip install -e .)"
    return found


def test_console_script_help_lists_subcommands():
    out = subprocess.run([_console_script(), "--help"], capture_output=True, text=True, check=True).stdout
    assert "demo" in out and "episode" in out


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "geo4d 0.1.0" in capsys.readouterr().out


def test_no_subcommand_prints_help(capsys):
    assert main([]) == 0
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_subcommand_is_an_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_episode_info_on_missing_path_is_a_clear_error(tmp_path, capsys):
    assert main(["episode", "info", str(tmp_path / "nope.zarr")]) == 2
    assert "nope.zarr: no such file or folder" in capsys.readouterr().err
