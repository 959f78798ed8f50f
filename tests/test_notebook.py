from __future__ import annotations

import json
import logging

import papermill
import pytest
from papermill.exceptions import PapermillExecutionError

from nasutils import cli
from nasutils.notebook import (
    NOTEBOOK_PARAMETERS,
    ParameterError,
    UnknownParameterError,
    check_parameters,
    check_positive,
    start,
)
from nasutils.profiles import UnknownProfileError, get_profile

from .conftest import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_notebook_is_registered():
    assert [nb.stem for nb in NOTEBOOKS] == sorted(NOTEBOOK_PARAMETERS)


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_cell_matches_registry(notebook):
    declared = papermill.inspect_notebook(str(notebook))
    assert sorted(declared) == sorted(NOTEBOOK_PARAMETERS[notebook.stem])
    assert declared["profile"]["default"] == '"quick"'


def test_unknown_parameter_is_rejected():
    namespace = {"profile": "quick", "data_path": None, "seed": None, "sede": 3, "json": json, "_x": 1}
    with pytest.raises(UnknownParameterError, match="Unknown parameter.*sede.*It accepts: profile, data_path, seed"):
        check_parameters(namespace, "01_dataset_and_bins")


def test_wrong_parameter_type_is_rejected():
    namespace = {"profile": "quick", "data_path": None, "seed": "three"}
    with pytest.raises(ParameterError, match="seed of notebook 01_dataset_and_bins must be int or None, got 'three'"):
        check_parameters(namespace, "01_dataset_and_bins")


def test_imported_names_are_not_parameters():
    namespace = {"profile": "quick", "data_path": None, "seed": 1, "display": print, "logging": logging}
    assert check_parameters(namespace, "01_dataset_and_bins") == {"profile": "quick", "data_path": None, "seed": 1}


def test_unknown_profile_lists_choices():
    with pytest.raises(UnknownProfileError, match="Unknown profile 'fast'. Choose one of: paper, quick."):
        get_profile("fast")


def test_start_resolves_seed_from_profile(real_csv):
    run = start({"profile": "paper", "data_path": str(real_csv), "seed": None}, "01_dataset_and_bins")
    assert run.seed == get_profile("paper").seed
    assert run.provenance()["SHA-256"].startswith(run.dataset.sha256)
    assert "| profile | `paper` |" in run.provenance_markdown()


@pytest.mark.slow
def test_papermill_run_rejects_unknown_parameter(real_csv, tmp_path):
    with pytest.raises(PapermillExecutionError, match="Unknown parameter.*colour"):
        papermill.execute_notebook(
            str(ROOT / "notebooks" / "01_dataset_and_bins.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"data_path": str(real_csv), "colour": "red"},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(tmp_path),
        )


@pytest.mark.slow
def test_papermill_run_rejects_unknown_profile(real_csv, tmp_path):
    with pytest.raises(PapermillExecutionError, match="Unknown profile 'huge'"):
        papermill.execute_notebook(
            str(ROOT / "notebooks" / "01_dataset_and_bins.ipynb"),
            str(tmp_path / "out.ipynb"),
            parameters={"data_path": str(real_csv), "profile": "huge"},
            kernel_name="python3",
            progress_bar=False,
            cwd=str(tmp_path),
        )


# --- the command line --------------------------------------------------------------


def test_cli_run_rejects_unknown_parameter_before_executing(real_csv, tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(ROOT)
    output = tmp_path / "out.ipynb"
    code = cli.main(["run", "01", "--data", str(real_csv), "-p", "colour", "red", "-o", str(output)])
    assert code == 1
    assert "Unknown parameter(s) colour for 01_dataset_and_bins.ipynb. It accepts: profile, data_path, seed" in caplog.text
    assert not output.exists()


def test_cli_rejects_unknown_profile(caplog, monkeypatch, real_csv):
    monkeypatch.chdir(ROOT)
    assert cli.main(["book", "--profile", "huge", "--data", str(real_csv)]) == 1
    assert "Unknown profile 'huge'. Choose one of: paper, quick." in caplog.text


def test_cli_rejects_missing_data_path(tmp_path, caplog, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert cli.main(["data", "--data", str(tmp_path / "absent.csv")]) == 1
    assert "absent.csv' from the path argument does not exist" in caplog.text


def test_cli_rejects_unknown_notebook(caplog, monkeypatch, real_csv):
    monkeypatch.chdir(ROOT)
    assert cli.main(["run", "99", "--data", str(real_csv)]) == 1
    assert "No notebook matches 99" in caplog.text


def test_cli_parameter_values_are_literals():
    assert cli.parse_value("3") == 3
    assert cli.parse_value("None") is None
    assert cli.parse_value("0.5") == 0.5
    assert cli.parse_value("paper") == "paper"


def test_count_parameters_must_be_positive():
    check_positive(seeds=None, timesteps=5)
    with pytest.raises(ParameterError, match="Parameter seeds must be a positive integer or None .* got 0"):
        check_positive(seeds=0)


def test_run_keeps_the_book_artifacts(tmp_path):
    book = tmp_path / "artifacts" / "quick"
    book.mkdir(parents=True)
    (book / "surrogate.json").write_text("{}")
    target = cli.run_artifacts(tmp_path, "quick", None)
    assert target == tmp_path / "_build" / "runs" / "artifacts"
    assert (target / "quick" / "surrogate.json").read_text() == "{}"
    (target / "quick" / "surrogate.json").write_text("changed")
    assert (book / "surrogate.json").read_text() == "{}"
    assert cli.run_artifacts(tmp_path, "quick", None) == target
    assert (target / "quick" / "surrogate.json").read_text() == "changed"
