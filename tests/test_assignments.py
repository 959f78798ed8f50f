"""The nbgrader assignments in assignments/ and nasutils.grading, which generates and grades them.

The slow tests generate the student versions once and grade three submissions
of every assignment in one nbgrader run. The three are the student version as
released, the student version with the solutions pasted back, and the same with
one part broken on purpose. Two more submissions of binning lack a test cell
or are no notebook at all. The tests then check the scores part by part.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path
from typing import Any

import nbformat
import papermill
import pytest

from nasutils import grading

from .conftest import ROOT

ASSIGNMENTS_DIR = ROOT / "assignments"
ASSIGNMENTS = ["binning", "environment", "search", "vqvae_loss"]

# Small settings, with a seed other than the notebooks' default 0, so that the
# checks must follow the parameters. Each assignment takes the names it declares.
SMALL = {"seed": 3, "n_rows": 300, "max_epochs": 6, "max_steps": 8, "budget": 120, "n_seeds": 2}

# One mistake per assignment: (solution cell, text of the solution, replacement,
# the test cell that must fail). Each mistake breaks one part and leaves the others passing.
WRONG_PARTS = {
    "binning": ("bin_accuracies", 'side="right"', 'side="left"', "test_bin_accuracies"),
    "environment": (
        "environment",
        "truncated = self.steps >= self.max_steps",
        "truncated = self.steps > self.max_steps",
        "test_episode_end",
    ),
    "search": ("mutate_width", "if v != child[column]", "if v > 0", "test_mutate_width"),
    "vqvae_loss": (
        "bounded_vqvae_loss",
        "codebook_term = squared_distance(z_e.detach(), e_k).mean()",
        "codebook_term = squared_distance(z_e, e_k).mean()",
        "test_loss_gradients",
    ),
}
STUDENTS = ("blank", "solved", "wrong_part")
DELETED_TEST = ("binning", "test_unused_block_violations")


def source_path(assignment: str) -> Path:
    return ASSIGNMENTS_DIR / assignment / f"{assignment}.ipynb"


def read(path: Path) -> Any:
    return nbformat.read(path, as_version=4)


def nbgrader_cells(notebook: Any, key: str) -> list[Any]:
    return [cell for cell in notebook.cells if cell.metadata.get("nbgrader", {}).get(key)]


def points(assignment: str) -> dict[str, float]:
    """Map each autograded part of an instructor notebook to its points."""
    return {
        cell.metadata.nbgrader["grade_id"]: float(cell.metadata.nbgrader["points"])
        for cell in nbgrader_cells(read(source_path(assignment)), "grade")
    }


def small_parameters(assignment: str, data_path: Path) -> dict[str, Any]:
    declared = grading.declared_parameters(read(source_path(assignment)))
    values = {name: value for name, value in SMALL.items() if name in declared}
    values["data_path"] = str(data_path)
    return values


def paste_solutions(student: Any, instructor: Any) -> None:
    """Replace each solution cell of a student notebook by the instructor's cell of the same grade_id."""
    solutions = {
        cell.metadata.nbgrader["grade_id"]: cell.source for cell in nbgrader_cells(instructor, "solution")
    }
    for cell in nbgrader_cells(student, "solution"):
        cell.source = solutions[cell.metadata.nbgrader["grade_id"]]


# --- The instructor notebooks, read without running them ---------------------------------


def test_assignments_are_found():
    assert grading.find_assignments(ASSIGNMENTS_DIR) == ASSIGNMENTS


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_metadata_is_nbgrader_format(assignment):
    notebook = read(source_path(assignment))
    ids = []
    for cell in notebook.cells:
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        assert meta["schema_version"] == 3, f"cell {meta.get('grade_id')}"
        assert {"grade", "solution", "locked", "grade_id"} <= set(meta), f"cell {meta.get('grade_id')}"
        ids.append(meta["grade_id"])
        if meta["grade"]:
            assert meta["points"] > 0, meta["grade_id"]
            assert meta["locked"], meta["grade_id"]
            assert not meta["solution"], meta["grade_id"]
    assert len(ids) == len(set(ids)), f"repeated grade_id in {ids}"
    assert len(nbgrader_cells(notebook, "grade")) >= 2


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_parameters_cell_is_tagged_and_locked(assignment):
    notebook = read(source_path(assignment))
    tagged = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert tagged[0].metadata.nbgrader["locked"]
    declared = grading.declared_parameters(notebook)
    assert {"seed", "data_path", "n_rows"} <= set(declared)
    assert papermill.inspect_notebook(str(source_path(assignment))).keys() == set(declared)


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_solution_cells_have_regions(assignment):
    for cell in nbgrader_cells(read(source_path(assignment)), "solution"):
        assert cell.source.count("### BEGIN SOLUTION") == 1, cell.metadata.nbgrader["grade_id"]
        assert cell.source.count("### END SOLUTION") == 1, cell.metadata.nbgrader["grade_id"]


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_test_cells_explain_failures(assignment):
    for cell in nbgrader_cells(read(source_path(assignment)), "grade"):
        grade_id = cell.metadata.nbgrader["grade_id"]
        assert "### BEGIN HIDDEN TESTS" in cell.source, grade_id
        assert "### END HIDDEN TESTS" in cell.source, grade_id
        tree = ast.parse(cell.source)
        bare = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert) and node.msg is None]
        assert not bare, f"{grade_id}: asserts without a message on lines {bare}"
        # nbgrader reads a number shown as the cell's result as partial credit. The
        # checking functions that end some cells return None, so calls are allowed.
        last = tree.body[-1]
        shows_value = isinstance(last, ast.Expr) and not isinstance(last.value, ast.Call)
        assert not shows_value, (
            f"{grade_id}: the last statement shows a value, which nbgrader may read as a score"
        )


# --- Parameters --------------------------------------------------------------------


def test_set_parameters_keeps_comments():
    notebook = read(source_path("search"))
    grading.set_parameters(notebook, {"seed": 7, "data_path": "/data/x.csv", "budget": 50})
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    lines = cell.source.split("\n")
    assert lines[0].startswith("seed = 7  # seeds")
    assert lines[1].startswith("data_path = '/data/x.csv'  # path")
    assert any(line.startswith("budget = 50  # queries") for line in lines)
    assert any(line.startswith("n_rows = None  #") for line in lines)


def test_set_parameters_handles_non_ascii_values():
    notebook = read(source_path("binning"))
    grading.set_parameters(notebook, {"data_path": "/données/é.csv"})
    grading.set_parameters(notebook, {"data_path": "/data/x.csv", "seed": 2})
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    lines = cell.source.split("\n")
    assert lines[0] == "seed = 2  # seeds the random accuracies and corrupted rows that the tests use"
    assert lines[1].startswith("data_path = '/data/x.csv'  # path of the dataset CSV, or None")


def test_set_parameters_rejects_unknown_name():
    notebook = read(source_path("binning"))
    with pytest.raises(
        grading.ParameterError, match="Unknown parameter.*budget.*sets: seed, data_path, n_rows"
    ):
        grading.set_parameters(notebook, {"budget": 5}, "binning")


def test_parameter_values_parse_as_literals():
    assert grading.parse_parameter_value("3") == 3
    assert grading.parse_parameter_value("None") is None
    assert grading.parse_parameter_value("0.5") == 0.5
    assert grading.parse_parameter_value("/data/file.csv") == "/data/file.csv"


def test_check_parameters_rejects_wrong_type():
    declared = {"seed": (int,), "n_rows": (int, type(None))}
    assert grading.check_parameters({"seed": 1, "n_rows": None, "other": [1]}, declared) == {
        "seed": 1,
        "n_rows": None,
    }
    with pytest.raises(grading.ParameterError, match="seed must be int, got True"):
        grading.check_parameters({"seed": True, "n_rows": None}, declared)
    with pytest.raises(grading.ParameterError, match="n_rows must be int or None, got '5'"):
        grading.check_parameters({"seed": 1, "n_rows": "5"}, declared)
    with pytest.raises(grading.ParameterError, match="Parameter n_rows is not defined"):
        grading.check_parameters({"seed": 1}, declared)


def test_dataset_subset_follows_seed(real_csv):
    first = grading.load_assignment_dataset(real_csv, n_rows=50, seed=1)
    again = grading.load_assignment_dataset(real_csv, n_rows=50, seed=1)
    other = grading.load_assignment_dataset(real_csv, n_rows=50, seed=2)
    assert len(first) == 50
    assert first.frame.equals(again.frame)
    assert not first.frame.equals(other.frame)
    assert list(first.frame.index) == list(range(50))
    assert len(grading.load_assignment_dataset(real_csv, n_rows=None, seed=1)) == 1200


def test_dataset_subset_size_is_checked(real_csv):
    with pytest.raises(grading.ParameterError, match="n_rows must be between 100 and 1200"):
        grading.load_assignment_dataset(real_csv, n_rows=99, seed=0, min_rows=100)


# --- Errors before nbgrader runs -----------------------------------------------------


def test_generate_rejects_output_inside_source(tmp_path):
    shutil.copytree(ASSIGNMENTS_DIR / "binning", tmp_path / "source" / "binning")
    with pytest.raises(grading.GradingError, match="must not contain each other"):
        grading.generate_student_versions(tmp_path / "source", tmp_path / "source" / "release")


def test_generate_rejects_unknown_assignment(tmp_path):
    with pytest.raises(grading.GradingError, match="Unknown assignment.*nope.*Known: binning"):
        grading.generate_student_versions(ASSIGNMENTS_DIR, tmp_path / "release", assignments=["nope"])


def test_generate_rejects_unknown_parameter(tmp_path):
    with pytest.raises(grading.ParameterError, match="Unknown parameter.*budjet.*Known:.*budget"):
        grading.generate_student_versions(ASSIGNMENTS_DIR, tmp_path / "release", parameters={"budjet": 3})


def test_generate_keeps_existing_output(tmp_path):
    (tmp_path / "release" / "binning").mkdir(parents=True)
    with pytest.raises(grading.GradingError, match="already exist.*--force"):
        grading.generate_student_versions(ASSIGNMENTS_DIR, tmp_path / "release", assignments=["binning"])


def test_grade_needs_submissions(tmp_path):
    (tmp_path / "submitted").mkdir()
    with pytest.raises(grading.GradingError, match="No submissions in"):
        grading.grade_submissions(tmp_path / "submitted", tmp_path / "grades.csv")


def test_cli_reports_missing_folder(tmp_path):
    status = grading.main(["grade", str(tmp_path / "missing"), str(tmp_path / "grades.csv")])
    assert status == 2
    assert not (tmp_path / "grades.csv").exists()


def test_cli_rejects_invalid_timeout(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        grading.main(["grade", str(tmp_path), str(tmp_path / "grades.csv"), "--timeout", "0"])
    assert stop.value.code == 2
    assert "expected a positive whole number of seconds, got '0'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["generate", "grade"])
def test_cli_help_describes_commands(command, capsys):
    with pytest.raises(SystemExit) as stop:
        grading.main([command, "--help"])
    assert stop.value.code == 0
    text = capsys.readouterr().out
    assert "--parameter NAME VALUE" in text
    assert "--course-dir" in text


# --- Running the notebooks ---------------------------------------------------------------


@pytest.fixture
def one_thread(monkeypatch):
    """Run kernels with one BLAS and torch thread, as CI does, so that runs do not compete for cores."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_instructor_notebook_runs(assignment, real_csv, tmp_path, one_thread):
    output = tmp_path / f"{assignment}.ipynb"
    papermill.execute_notebook(
        str(source_path(assignment)),
        str(output),
        parameters=small_parameters(assignment, real_csv),
        kernel_name="python3",
        progress_bar=False,
        cwd=str(tmp_path),
    )
    printed = "".join(
        output_.get("text", "")
        for cell in read(output).cells
        if cell.cell_type == "code"
        for output_ in cell.outputs
    )
    for part in "ABC"[: len(points(assignment))]:
        assert f"Part {part}: the visible tests passed" in printed


@pytest.fixture(scope="module")
def graded(real_csv, tmp_path_factory):
    """Generate the student versions, grade three submissions per assignment; return the table and folders."""
    root = tmp_path_factory.mktemp("classroom")
    parameters = {**SMALL, "data_path": str(real_csv)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        released = grading.generate_student_versions(ASSIGNMENTS_DIR, root / "release", parameters=parameters)

        for path in released:
            assignment = path.parent.name
            instructor = read(source_path(assignment))
            for student in STUDENTS:
                notebook = read(path)
                if student != "blank":
                    paste_solutions(notebook, instructor)
                if student == "wrong_part":
                    cell_id, right, wrong, _ = WRONG_PARTS[assignment]
                    cell = next(
                        c for c in notebook.cells if c.metadata.get("nbgrader", {}).get("grade_id") == cell_id
                    )
                    assert right in cell.source, f"{assignment}: WRONG_PARTS no longer matches the solution"
                    cell.source = cell.source.replace(right, wrong)
                folder = root / "submitted" / student / assignment
                folder.mkdir(parents=True)
                nbformat.write(notebook, folder / path.name)

            if assignment == DELETED_TEST[0]:
                notebook = read(path)
                paste_solutions(notebook, instructor)
                notebook.cells = [
                    c
                    for c in notebook.cells
                    if c.metadata.get("nbgrader", {}).get("grade_id") != DELETED_TEST[1]
                ]
                folder = root / "submitted" / "deleted_test" / assignment
                folder.mkdir(parents=True)
                nbformat.write(notebook, folder / path.name)

                folder = root / "submitted" / "broken_file" / assignment
                folder.mkdir(parents=True)
                (folder / path.name).write_text("this is not a notebook")

        table = grading.grade_submissions(
            root / "submitted",
            root / "grades.csv",
            source_dir=ASSIGNMENTS_DIR,
            parameters=parameters,
            course_dir=root / "course",
            timeout=300,
        )
    return {"table": table, "root": root, "released": released}


def scores(graded: dict[str, Any], student: str, assignment: str) -> dict[str, float]:
    rows = graded["table"].query("student_id == @student and assignment_id == @assignment")
    return dict(zip(rows["part"], rows["score"], strict=True))


@pytest.mark.slow
def test_student_versions_hide_solutions(graded):
    assert sorted(path.parent.name for path in graded["released"]) == ASSIGNMENTS
    for path in graded["released"]:
        notebook = read(path)
        text = "\n".join(cell.source for cell in notebook.cells)
        assert "BEGIN SOLUTION" not in text
        assert "HIDDEN TESTS" not in text
        for cell in nbgrader_cells(notebook, "solution"):
            assert "raise NotImplementedError()" in cell.source
        assert "seed = 3  #" in text


@pytest.mark.slow
def test_grades_csv_has_one_row_per_part(graded):
    written = graded["root"] / "grades.csv"
    assert written.read_text().splitlines()[0] == ",".join(grading.CSV_COLUMNS)
    parts = len(STUDENTS) * sum(len(points(a)) for a in ASSIGNMENTS) + 2 * len(points(DELETED_TEST[0]))
    assert len(graded["table"]) == parts
    for assignment in ASSIGNMENTS:
        rows = graded["table"].query("student_id == 'solved' and assignment_id == @assignment")
        assert list(rows["part"]) == list(points(assignment)), "parts should follow the notebook's order"


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_student_version_scores_zero(graded, assignment):
    assert scores(graded, "blank", assignment) == dict.fromkeys(points(assignment), 0.0)

    executed = read(graded["root"] / "course" / "autograded" / "blank" / assignment / f"{assignment}.ipynb")
    for cell in executed.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        errors = [output for output in cell.outputs if output.output_type == "error"]
        if meta.get("grade") or meta.get("solution"):
            continue
        assert not errors, (
            f"{assignment}: an ungraded cell failed in the student version:\n{cell.source[:300]}"
        )
    for cell in nbgrader_cells(executed, "grade"):
        errors = [output for output in cell.outputs if output.output_type == "error"]
        assert [e.ename for e in errors] == ["NotImplementedError"], cell.metadata.nbgrader["grade_id"]


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_pasted_solutions_score_full(graded, assignment):
    assert scores(graded, "solved", assignment) == points(assignment)


@pytest.mark.slow
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_wrong_part_loses_its_points(graded, assignment):
    broken = WRONG_PARTS[assignment][3]
    expected = {part: 0.0 if part == broken else value for part, value in points(assignment).items()}
    assert scores(graded, "wrong_part", assignment) == expected


@pytest.mark.slow
def test_deleted_test_cell_is_restored(graded):
    assert scores(graded, "deleted_test", DELETED_TEST[0]) == points(DELETED_TEST[0])


@pytest.mark.slow
def test_unreadable_submission_has_no_score(graded):
    rows = graded["table"].query("student_id == 'broken_file'")
    assert list(rows["part"]) == list(points(DELETED_TEST[0]))
    assert rows["score"].isna().all()
    assert list(rows["max_score"]) == list(points(DELETED_TEST[0]).values())


@pytest.mark.slow
def test_cli_generates_one_assignment(tmp_path, capsys):
    status = grading.main(
        ["generate", str(ASSIGNMENTS_DIR), str(tmp_path / "release"), "-a", "binning", "-p", "seed", "5"]
    )
    assert status == 0
    assert capsys.readouterr().out.strip() == f"Generated 1 student notebook(s) in {tmp_path / 'release'}"
    text = (tmp_path / "release" / "binning" / "binning.ipynb").read_text()
    assert "seed = 5  #" in text
    assert text.count("NotImplementedError") >= 2
