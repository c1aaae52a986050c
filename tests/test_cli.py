"""`hf-ad`: user errors print one line and exit 2; `--debug` shows the traceback."""

from __future__ import annotations

import pytest

from hf_ad import cli

BAD_TRAIN = ["train", "--dataset", "data", "--output-dir", "out", "--max-steps", "0"]


def test_a_bad_flag_value_is_one_line(capsys):
    assert cli.main(BAD_TRAIN) == 2
    captured = capsys.readouterr()
    assert captured.err == (
        "hf-ad train: error: max_steps must be a positive integer, got 0 (rerun with --debug for details)\n"
    )
    assert captured.out == ""


def test_a_missing_folder_is_one_line(tmp_path, capsys):
    missing = tmp_path / "no-such-model"
    argv = ["evaluate", "--model", str(missing), "--out", str(tmp_path / "eval"), "--episodes", "2"]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("hf-ad evaluate: error: ") and str(missing) in err and err.count("\n") == 1
    assert not (tmp_path / "eval").exists()


@pytest.mark.parametrize("argv", [["--debug", *BAD_TRAIN], [*BAD_TRAIN, "--debug"]])
def test_debug_shows_the_traceback(argv):
    with pytest.raises(ValueError, match="max_steps must be a positive integer"):
        cli.main(argv)


def test_argparse_errors_and_unknown_commands_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--no-such-flag"])
    assert exit_info.value.code == 2
    assert cli.main(["no-such-command"]) == 2
    assert "unknown command 'no-such-command'" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_help_shows_defaults_but_no_default_none(name, capsys):
    """A required flag (or one whose help says what leaving it out means) gets no "(default: None)"."""
    with pytest.raises(SystemExit) as exit_info:
        cli.main([name, "--help"])
    assert exit_info.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: None)" not in text
    assert "(default: " in text  # a real default is still shown


def test_python_m_hf_ad_is_the_command_line(monkeypatch, capsys):
    """`python -m hf_ad` (what `accelerate launch -m hf_ad train` runs in each process) is `hf-ad`."""
    import runpy

    monkeypatch.setattr("sys.argv", ["hf_ad", *BAD_TRAIN])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_module("hf_ad", run_name="__main__")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("hf-ad train: error: max_steps must be a positive integer")
