"""The CLI's help says what the code does (it had drifted: five formats listed of the
26 suffixes a folder is searched for, and a temp dir "where converted audio goes")."""

from __future__ import annotations

import re

import pytest

from speakeasy_core.cli import main
from speakeasy_core.job import AUDIO_SUFFIXES


def transcribe_help(capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(["transcribe", "--help"])
    assert stopped.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_the_help_names_every_suffix_a_folder_is_searched_for(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = transcribe_help(capsys)
    for suffix in AUDIO_SUFFIXES:
        assert re.search(rf"\b{suffix.lstrip('.')}\b", text), suffix


def test_the_help_says_no_audio_goes_to_the_temp_dir(capsys: pytest.CaptureFixture[str]) -> None:
    text = transcribe_help(capsys)
    assert "converted audio" not in text
    assert "audio is never written there" in text
