"""The CLI (rerank_kit/cli.py): every command is wired, usage lists them, an unknown one exits 2."""

from __future__ import annotations

import importlib

import pytest

from rerank_kit.cli import COMMANDS, main


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_cli_command_is_wired(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = importlib.import_module(COMMANDS[command][0])
    assert callable(module.add_arguments) and callable(module.run)
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"rerank-kit {command}" in capsys.readouterr().out


def test_cli_usage_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert main(["--help"]) == 0
    usage = capsys.readouterr().out
    assert all(name in usage for name in COMMANDS)
    assert main(["no-such-command"]) == 2
