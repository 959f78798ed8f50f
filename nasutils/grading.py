"""Classroom assignments with nbgrader: student versions, autograding and notebook helpers.

The instructor notebooks in ``assignments/`` follow nbgrader's "source" layout:
one folder per assignment, named by its assignment id, containing one notebook
(``assignments/binning/binning.ipynb``). :func:`generate_student_versions` and
:func:`grade_submissions` run nbgrader 0.9 through its Python API
(``nbgrader.apps.NbGraderAPI``) in a course folder of their own. That folder
contains an ``nbgrader_config.py`` and a SQLite gradebook. The API reads that
file only, not the user's own nbgrader configuration files, and needs no
JupyterHub and no shared exchange folder. Grading builds the gradebook again from the
instructor notebooks, because nbgrader restores the hidden tests from the
gradebook when it autogrades.

Submissions use nbgrader's layout: ``<submitted>/<student_id>/<assignment_id>/<notebook>.ipynb``.
The grades CSV has one row per (student, assignment, notebook, part), where a
part is one autograded test cell, with the columns in :data:`CSV_COLUMNS`.

Every assignment notebook has a papermill ``parameters`` cell after its
introduction. Both functions take ``parameters`` to rewrite that cell (see
:func:`set_parameters`), so a class can get its own seed, budget or data
subset. The notebooks compute every expected value from their parameters, so
the checks hold for any valid setting. Correct code therefore still passes
when grading uses other parameters than the release did.

Notebook side: :func:`check_parameters` and :func:`load_assignment_dataset` are
what the assignments call first. They need only nasutils; nbgrader is imported
only by the functions that generate and grade.

Command line::

    python -m nasutils.grading generate assignments release -p seed 3
    python -m nasutils.grading grade submitted grades.csv -p seed 3
"""

from __future__ import annotations

import argparse
import ast
import logging
import math
import os
import shutil
import sys
import sysconfig
import tempfile
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import Dataset, load_dataset, project_dir
from .notebook import typed_parameters

__all__ = [
    "COURSE_ID",
    "CSV_COLUMNS",
    "DEFAULT_TIMEOUT",
    "GradingError",
    "ParameterError",
    "check_parameters",
    "declared_parameters",
    "default_source_dir",
    "find_assignments",
    "generate_student_versions",
    "grade_submissions",
    "load_assignment_dataset",
    "main",
    "parse_parameter_value",
    "set_parameters",
]

logger = logging.getLogger(__name__)

COURSE_ID = "nasutils"
"""Course id of the temporary nbgrader course, stored in its gradebook."""

CSV_COLUMNS: tuple[str, ...] = ("student_id", "assignment_id", "notebook_id", "part", "score", "max_score")
"""Columns of the grades CSV. ``part`` is the ``grade_id`` of an autograded test cell."""

DEFAULT_TIMEOUT = 600
"""Seconds one notebook cell may run during autograding before nbgrader interrupts it."""

_IGNORED_FOLDERS = {".ipynb_checkpoints", "__pycache__"}


class GradingError(RuntimeError):
    """Raised when nbgrader fails to generate an assignment, or the folders given are unusable."""


class ParameterError(ValueError):
    """Raised for an assignment parameter that is unknown, missing or of the wrong type."""


# --- Notebook side -----------------------------------------------------------------


def check_parameters(
    namespace: Mapping[str, Any], declared: Mapping[str, tuple[type, ...]]
) -> dict[str, Any]:
    """Return the declared parameters from a notebook's ``globals()``, checking presence and types.

    ``declared`` maps each parameter name to the types its value may have,
    ``type(None)`` for None. Unlike :func:`nasutils.notebook.check_parameters`
    this does not reject other names in ``namespace``, because students rerun
    cells in any order and fill the namespace with their own variables.
    :func:`set_parameters` rejects unknown names when a class's parameters are set.
    """
    return typed_parameters(namespace, declared, error=ParameterError)


def load_assignment_dataset(
    data_path: str | os.PathLike[str] | None,
    *,
    n_rows: int | None,
    seed: int,
    min_rows: int = 1,
) -> Dataset:
    """Load the dataset as :func:`nasutils.data.load_dataset` does, optionally as a random subset.

    With ``n_rows``, the result contains that many rows drawn without replacement
    with ``numpy.random.default_rng(seed)``, in file order and renumbered from
    0. Its ``path`` and ``sha256`` still describe the whole file.
    ``min_rows`` is the fewest rows the calling assignment works with.
    """
    dataset = load_dataset(Path(os.path.expanduser(data_path)) if data_path else None)
    if n_rows is None:
        return dataset
    if not min_rows <= n_rows <= len(dataset):
        raise ParameterError(
            f"n_rows must be between {min_rows} and {len(dataset)} (the rows in {dataset.path.name}) "
            f"for this assignment, or None for all rows; got {n_rows}."
        )
    rows = np.sort(np.random.default_rng(seed).choice(len(dataset), size=n_rows, replace=False))
    frame = dataset.frame.iloc[rows].reset_index(drop=True)
    return Dataset(frame=frame, path=dataset.path, sha256=dataset.sha256)


# --- Parameters cells ----------------------------------------------------------------


def parse_parameter_value(text: str) -> Any:
    """Read a command-line parameter value as a Python literal (``3``, ``None``, ``'a'``), else as text."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def _parameters_cell(notebook: Any, label: str) -> Any:
    cells = [cell for cell in notebook.cells if "parameters" in cell.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ParameterError(f"{label} must have exactly one cell tagged 'parameters', found {len(cells)}.")
    return cells[0]


def declared_parameters(notebook: Any, label: str = "The notebook") -> list[str]:
    """Return the names that the parameters cell of an nbformat notebook assigns, in order."""
    source = _parameters_cell(notebook, label).source
    return [target.id for target, _ in _assignments(ast.parse(source))]


def _assignments(tree: ast.Module) -> Iterator[tuple[ast.Name, ast.stmt]]:
    for statement in tree.body:
        if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
            target = statement.targets[0]
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            target = statement.target
        else:
            continue
        if isinstance(target, ast.Name):
            yield target, statement


def set_parameters(notebook: Any, values: Mapping[str, Any], label: str = "The notebook") -> None:
    """Rewrite the assignments of the parameters cell of an nbformat notebook, in place.

    Each name in ``values`` must be assigned in that cell. Its statement
    becomes ``name = repr(value)``, and a comment after it on the same line is
    kept. ``label`` names the notebook in error messages.
    """
    cell = _parameters_cell(notebook, label)
    lines = cell.source.split("\n")
    statements = {target.id: statement for target, statement in _assignments(ast.parse(cell.source))}
    unknown = sorted(set(values) - set(statements))
    if unknown:
        raise ParameterError(
            f"Unknown parameter(s) {', '.join(unknown)} for {label}. Its parameters cell sets: "
            f"{', '.join(statements)}."
        )
    # Rewrite from the bottom up, so that the line numbers of earlier statements stay valid.
    for name in sorted(values, key=lambda n: statements[n].lineno, reverse=True):
        statement = statements[name]
        first = statement.lineno - 1
        last = (statement.end_lineno or statement.lineno) - 1
        # ast column offsets count UTF-8 bytes, not characters.
        before = lines[first].encode()[: statement.col_offset].decode()
        end = statement.end_col_offset
        after = lines[last].encode()[end:].decode() if end is not None else ""
        lines[first : last + 1] = [f"{before}{name} = {values[name]!r}{after}"]
    cell.source = "\n".join(lines)


# --- Course folders ------------------------------------------------------------------


def default_source_dir() -> Path:
    """Return the project's ``assignments/`` folder."""
    return project_dir() / "assignments"


def find_assignments(source_dir: str | os.PathLike[str]) -> list[str]:
    """Return the assignment ids in a source folder: its subfolders that hold a notebook, sorted."""
    folder = Path(source_dir)
    if not folder.is_dir():
        raise GradingError(f"Source folder {folder} not found; it should contain one folder per assignment.")
    found = sorted(
        child.name
        for child in folder.iterdir()
        if child.is_dir()
        and not child.name.startswith(".")
        and child.name not in _IGNORED_FOLDERS
        and any(child.glob("*.ipynb"))
    )
    if not found:
        raise GradingError(f"No assignment found in {folder}: no subfolder contains an .ipynb file.")
    return found


def _select(available: Sequence[str], requested: Sequence[str] | None, source_dir: Path) -> list[str]:
    if requested is None:
        return list(available)
    unknown = sorted(set(requested) - set(available))
    if unknown:
        raise GradingError(
            f"Unknown assignment(s) {', '.join(unknown)} in {source_dir}. Known: {', '.join(available)}."
        )
    return [name for name in available if name in set(requested)]


def _copy_source(
    source_dir: Path, course_root: Path, assignments: Sequence[str], parameters: Mapping[str, Any]
) -> None:
    """Copy the assignments into ``course_root/source`` and write ``parameters`` into their notebooks.

    A parameter that some assignment's parameters cell does not assign is left
    out for that assignment. A parameter that no selected assignment assigns is an error.
    """
    import nbformat

    used: set[str] = set()
    declared_anywhere: set[str] = set()
    for assignment in assignments:
        destination = course_root / "source" / assignment
        shutil.copytree(
            source_dir / assignment,
            destination,
            ignore=shutil.ignore_patterns(*_IGNORED_FOLDERS),
        )
        for path in sorted(destination.glob("*.ipynb")):
            notebook = nbformat.read(path, as_version=4)
            label = f"notebook {assignment}/{path.name}"
            declared = set(declared_parameters(notebook, label))
            declared_anywhere |= declared
            values = {name: value for name, value in parameters.items() if name in declared}
            skipped = sorted(set(parameters) - declared)
            if skipped:
                logger.info("%s has no parameter(s) %s; keeping its defaults", label, ", ".join(skipped))
            if values:
                set_parameters(notebook, values, label)
                nbformat.write(notebook, path)
                used |= set(values)
    unused = sorted(set(parameters) - used)
    if unused:
        known = ", ".join(sorted(declared_anywhere))
        raise ParameterError(
            f"Unknown parameter(s) {', '.join(unused)}: no selected assignment declares them. Known: {known}."
        )


_CONFIG_TEMPLATE = """\
# Written by nasutils.grading for one run. The course folder is deleted afterwards unless it was given.
c = get_config()  # noqa: F821

c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.db_url = {db_url!r}
# An exchange folder inside the course keeps nbgrader from looking for /srv/nbgrader/exchange.
c.Exchange.root = {exchange!r}
# nbgrader's default of 30 s per cell is too short for the training cells.
c.Execute.timeout = {timeout!r}
# The student stub of every solution region: the notebook still runs top to bottom.
c.ClearSolutions.code_stub = {{"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}}
# Put back test cells that a student deleted, so that they still run (nbgrader's default is False).
c.OverwriteCells.add_missing_cells = True
"""


def _write_config(course_root: Path, timeout: int) -> Path:
    exchange = course_root / "exchange"
    exchange.mkdir(parents=True, exist_ok=True)
    path = course_root / "nbgrader_config.py"
    path.write_text(
        _CONFIG_TEMPLATE.format(
            root=str(course_root),
            course_id=COURSE_ID,
            db_url=f"sqlite:///{course_root / 'gradebook.db'}",
            exchange=str(exchange),
            timeout=timeout,
        )
    )
    return path


@contextmanager
def _course_root(course_dir: str | os.PathLike[str] | None) -> Iterator[Path]:
    """Yield an empty course folder: ``course_dir`` (kept afterwards) or a temporary one."""
    if course_dir is not None:
        root = Path(course_dir).resolve()
        if root.exists() and any(root.iterdir()):
            raise GradingError(f"Course folder {root} is not empty; give a new or empty folder.")
        root.mkdir(parents=True, exist_ok=True)
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="nasutils-nbgrader-") as temporary:
        yield Path(temporary)


@contextmanager
def _nbgrader_environment() -> Iterator[None]:
    """Prepare the process for nbgrader calls and undo it afterwards.

    nbgrader 0.9.6 runs the ``alembic`` command by name when it creates a
    gradebook, so this puts the interpreter's scripts folder first on PATH.
    Without it, ``.venv/bin/python`` run from a shell whose PATH lacks
    ``.venv/bin`` fails with "No such file or directory: 'alembic'".

    nbgrader logs through the "traitlets" logger. That logger stops
    propagating here, because :func:`_log_result` passes on what
    ``capture_log`` collected: everything at DEBUG, and the whole log of a
    failed step at ERROR. nbgrader 0.9.6 with SQLAlchemy 2 also warns
    "Object of type <SubmittedAssignment> not in session" on every autograde,
    and nbformat warns about the missing cell id of a test cell that nbgrader
    puts back. Neither affects the grades, so both warnings are silenced.
    """
    scripts = sysconfig.get_path("scripts")
    previous_path = os.environ.get("PATH")
    os.environ["PATH"] = os.pathsep.join([scripts, previous_path]) if previous_path else scripts
    traitlets_logger = logging.getLogger("traitlets")
    previous_propagate, previous_level = traitlets_logger.propagate, traitlets_logger.level
    traitlets_logger.propagate = False
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Object of type <\w+> not in session")
            warnings.filterwarnings("ignore", message=r"Cell is missing an id field")
            yield
    finally:
        if previous_path is None:
            os.environ.pop("PATH", None)
        else:
            os.environ["PATH"] = previous_path
        traitlets_logger.propagate = previous_propagate
        traitlets_logger.setLevel(previous_level)


def _api(course_root: Path) -> Any:
    """Build an ``NbGraderAPI`` configured by the course folder's ``nbgrader_config.py``."""
    from nbgrader.apps import NbGraderAPI
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_root)).load_config()
    return NbGraderAPI(config=config)


def _log_result(result: Mapping[str, Any], action: str) -> bool:
    """Log what nbgrader reported for one action; return whether it succeeded."""
    for line in result.get("log", "").splitlines():
        logger.debug("nbgrader %s: %s", action, line)
    if result.get("success"):
        return True
    logger.error("nbgrader %s failed:\n%s%s", action, result.get("log", ""), result.get("error", ""))
    return False


def _generate(api: Any, assignments: Sequence[str]) -> None:
    for assignment in assignments:
        logger.info("Generating the student version of %s", assignment)
        if not _log_result(
            api.generate_assignment(assignment, force=True, create=True), f"generate {assignment}"
        ):
            raise GradingError(
                f"nbgrader could not generate assignment {assignment}; the log above names the cell. "
                "Check its nbgrader cell metadata and solution markers."
            )


def _check_separate(first: Path, second: Path, problem: str) -> None:
    """Raise GradingError, starting with ``problem``, when one folder is or contains the other."""
    a, b = first.resolve(), second.resolve()
    if a == b or a in b.parents or b in a.parents:
        raise GradingError(f"{problem}: {first} and {second} must not contain each other.")


def generate_student_versions(
    source_dir: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    *,
    parameters: Mapping[str, Any] | None = None,
    assignments: Sequence[str] | None = None,
    overwrite: bool = False,
    course_dir: str | os.PathLike[str] | None = None,
) -> list[Path]:
    """Write the student version of each assignment to ``output_dir/<assignment_id>/``.

    nbgrader's ``generate_assignment`` replaces each solution region with
    ``raise NotImplementedError()``, removes the hidden tests, clears outputs
    and locks the test cells. ``parameters`` (name to value) rewrites the
    parameters cells first. An assignment whose parameters cell lacks a name
    keeps its default, but a name that no selected assignment declares raises
    :class:`ParameterError`. ``assignments`` selects assignment ids (all by
    default). An existing ``output_dir/<assignment_id>`` folder is replaced
    only with ``overwrite``. ``course_dir``, a new or empty folder, keeps
    nbgrader's course folder for inspection. Returns the paths of the
    generated notebooks.
    """
    source = Path(source_dir)
    output = Path(output_dir)
    selected = _select(find_assignments(source), assignments, source)
    _check_separate(source, output, "The source and output folders overlap")
    if course_dir is not None:
        _check_separate(Path(course_dir), source, "The course and source folders overlap")
        _check_separate(Path(course_dir), output, "The course and output folders overlap")
    existing = [output / name for name in selected if (output / name).exists()]
    if existing and not overwrite:
        raise GradingError(
            f"Output folder(s) {', '.join(map(str, existing))} already exist; pass overwrite=True "
            "(--force on the command line) to replace them."
        )

    with _course_root(course_dir) as root, _nbgrader_environment():
        _copy_source(source, root, selected, parameters or {})
        _write_config(root, DEFAULT_TIMEOUT)
        _generate(_api(root), selected)

        written: list[Path] = []
        output.mkdir(parents=True, exist_ok=True)
        for name in selected:
            target = output / name
            if target.exists():
                logger.info("Replacing %s", target)
                shutil.rmtree(target)
            shutil.copytree(root / "release" / name, target)
            written += sorted(target.glob("*.ipynb"))
    logger.info("Wrote %d student notebook(s) to %s", len(written), output)
    return written


def _submissions(submitted: Path) -> dict[str, list[str]]:
    """Map each assignment id to the students who submitted it, from nbgrader's submitted layout."""
    if not submitted.is_dir():
        raise GradingError(
            f"Submissions folder {submitted} not found; "
            "it should contain <student_id>/<assignment_id>/*.ipynb."
        )
    found: dict[str, list[str]] = {}
    for student in sorted(p for p in submitted.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for assignment in sorted(p for p in student.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if any(assignment.glob("*.ipynb")):
                found.setdefault(assignment.name, []).append(student.name)
    if not found:
        raise GradingError(
            f"No submissions in {submitted}: expected notebooks at <student_id>/<assignment_id>/*.ipynb."
        )
    return found


def _graded_parts(source: Path, assignment: str) -> dict[tuple[str, str], float]:
    """Map each (notebook, grade_id) of an assignment's instructor notebooks to its points, in cell order."""
    import nbformat

    parts: dict[tuple[str, str], float] = {}
    for path in sorted((source / assignment).glob("*.ipynb")):
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            meta = cell.metadata.get("nbgrader", {})
            if meta.get("grade"):
                parts[(path.stem, meta["grade_id"])] = float(meta["points"])
    return parts


def _read_grades(
    course_root: Path,
    submitted: Mapping[str, Sequence[str]],
    source: Path,
    failed: set[tuple[str, str]],
) -> list[dict[str, Any]]:
    """Read every grade from the gradebook; the (assignment, student) pairs in ``failed`` get NaN scores.

    nbgrader's gradebook reports 0 for a grade that was never computed, so a
    failed autograde run would otherwise look like a zero score. A submission
    missing from the gradebook gets one NaN row per part of the instructor notebooks.
    """
    from nbgrader.api import Gradebook, MissingEntry

    rows: list[dict[str, Any]] = []
    with Gradebook(f"sqlite:///{course_root / 'gradebook.db'}", COURSE_ID) as gradebook:
        for assignment, students in submitted.items():
            parts = _graded_parts(source, assignment)
            order = {part: rank for rank, part in enumerate(parts)}
            for student in students:
                try:
                    submission = gradebook.find_submission(assignment, student)
                except MissingEntry:
                    logger.error(
                        "No grades for %s of %s: nbgrader recorded no submission", assignment, student
                    )
                    scores = [
                        (notebook, part, math.nan, points) for (notebook, part), points in parts.items()
                    ]
                else:
                    graded = (assignment, student) not in failed
                    scores = [
                        (
                            notebook.name,
                            grade.name,
                            float(grade.score) if graded else math.nan,
                            float(grade.max_score),
                        )
                        for notebook in submission.notebooks
                        for grade in notebook.grades
                    ]
                    scores.sort(key=lambda item: order.get((item[0], item[1]), math.inf))
                for notebook_id, part, score, max_score in scores:
                    rows.append(
                        {
                            "student_id": student,
                            "assignment_id": assignment,
                            "notebook_id": notebook_id,
                            "part": part,
                            "score": score,
                            "max_score": max_score,
                        }
                    )
    return rows


def grade_submissions(
    submitted_dir: str | os.PathLike[str],
    output_csv: str | os.PathLike[str],
    *,
    source_dir: str | os.PathLike[str] | None = None,
    parameters: Mapping[str, Any] | None = None,
    course_dir: str | os.PathLike[str] | None = None,
    timeout: int = DEFAULT_TIMEOUT,
) -> pd.DataFrame:
    """Autograde every submission in ``submitted_dir`` and write one CSV row per autograded part.

    ``submitted_dir`` contains ``<student_id>/<assignment_id>/<notebook>.ipynb``.
    The instructor notebooks come from ``source_dir`` (the project's
    ``assignments/`` by default) with ``parameters`` written into them, as
    for :func:`generate_student_versions`. nbgrader then replaces the
    submitted test cells and locked cells with the instructor's, hidden tests
    included, and runs each notebook. A test cell scores its points when it
    runs without an error and without output on stderr. ``timeout`` is the
    limit in seconds for one cell. ``course_dir`` keeps nbgrader's course folder,
    with ``autograded/`` (the executed notebooks) and ``gradebook.db``.

    The CSV and the returned table have the columns :data:`CSV_COLUMNS`, one
    row per (student, assignment, notebook, part). A submission that nbgrader
    failed to autograde has NaN scores, and the error is logged.
    """
    submitted = Path(submitted_dir)
    source = Path(source_dir) if source_dir is not None else default_source_dir()
    by_assignment = _submissions(submitted)
    _select(find_assignments(source), sorted(by_assignment), source)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 1:
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}.")
    if course_dir is not None:
        _check_separate(Path(course_dir), submitted, "The course and submissions folders overlap")
        _check_separate(Path(course_dir), source, "The course and source folders overlap")

    with _course_root(course_dir) as root, _nbgrader_environment():
        _copy_source(source, root, sorted(by_assignment), parameters or {})
        shutil.copytree(submitted, root / "submitted", ignore=shutil.ignore_patterns(*_IGNORED_FOLDERS))
        _write_config(root, timeout)
        api = _api(root)
        _generate(api, sorted(by_assignment))
        failed: set[tuple[str, str]] = set()
        for assignment, students in sorted(by_assignment.items()):
            for student in students:
                logger.info("Autograding %s of %s", assignment, student)
                result = api.autograde(assignment, student, force=True, create=True)
                if not _log_result(result, f"autograde {assignment} of {student}"):
                    failed.add((assignment, student))
        rows = _read_grades(root, by_assignment, source, failed)

    table = pd.DataFrame(rows, columns=list(CSV_COLUMNS))
    output = Path(output_csv)
    output.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(output, index=False)
    logger.info("Wrote %d grade rows to %s", len(table), output)
    return table


# --- Command line ----------------------------------------------------------------


def _parameter_pairs(pairs: Sequence[Sequence[str]] | None) -> dict[str, Any]:
    return {name: parse_parameter_value(value) for name, value in pairs or []}


def _positive_seconds(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number of seconds, got {text!r}")
    return value


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m nasutils.grading",
        description="Generate student versions of the nbgrader assignments and autograde submissions, "
        "locally and without JupyterHub.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="also log every message of nbgrader")
    commands = parser.add_subparsers(dest="command", required=True)

    parameter_help = (
        "set a parameter of the assignments' parameters cell, such as -p seed 3 or -p n_rows 600 "
        "(a Python literal, else a string); repeatable. Assignments that lack the parameter keep "
        "their default. Use the same values for generate and grade."
    )

    generate = commands.add_parser(
        "generate",
        help="write the student versions of the assignments",
        description="Write each assignment's student version (solutions replaced by stubs, hidden tests "
        "removed) to OUTPUT_DIR/<assignment_id>/.",
    )
    generate.add_argument(
        "source_dir",
        metavar="SOURCE_DIR",
        type=Path,
        help="folder of instructor notebooks, one subfolder per assignment",
    )
    generate.add_argument(
        "output_dir",
        metavar="OUTPUT_DIR",
        type=Path,
        help="folder that receives one subfolder per assignment",
    )
    generate.add_argument(
        "-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), help=parameter_help
    )
    generate.add_argument(
        "-a",
        "--assignment",
        action="append",
        help="generate only this assignment id; repeatable (default: all)",
    )
    generate.add_argument(
        "-f", "--force", action="store_true", help="replace existing assignment folders in OUTPUT_DIR"
    )
    generate.add_argument(
        "--course-dir", type=Path, help="keep nbgrader's course folder here (a new or empty folder)"
    )

    grade = commands.add_parser(
        "grade",
        help="autograde submissions and write a grades CSV",
        description="Autograde SUBMITTED_DIR/<student_id>/<assignment_id>/*.ipynb and write one CSV row per "
        f"(student, assignment, notebook, part) with the columns {', '.join(CSV_COLUMNS)}.",
    )
    grade.add_argument(
        "submitted_dir",
        metavar="SUBMITTED_DIR",
        type=Path,
        help="folder of submissions: <student_id>/<assignment_id>/*.ipynb",
    )
    grade.add_argument("output_csv", metavar="OUTPUT_CSV", type=Path, help="grades CSV to write")
    grade.add_argument(
        "--source",
        type=Path,
        default=None,
        help="folder of instructor notebooks (default: the project's assignments/ folder)",
    )
    grade.add_argument(
        "-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"), help=parameter_help
    )
    grade.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds one notebook cell may run before it is interrupted (default: {DEFAULT_TIMEOUT})",
    )
    grade.add_argument(
        "--course-dir", type=Path, help="keep nbgrader's course folder here (a new or empty folder)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (1 when a submission could not be graded)."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.verbose:
        logging.getLogger(__name__).setLevel(logging.DEBUG)

    try:
        if args.command == "generate":
            written = generate_student_versions(
                args.source_dir,
                args.output_dir,
                parameters=_parameter_pairs(args.parameter),
                assignments=args.assignment,
                overwrite=args.force,
                course_dir=args.course_dir,
            )
            print(f"Generated {len(written)} student notebook(s) in {args.output_dir}")
            return 0

        table = grade_submissions(
            args.submitted_dir,
            args.output_csv,
            source_dir=args.source,
            parameters=_parameter_pairs(args.parameter),
            course_dir=args.course_dir,
            timeout=args.timeout,
        )
    except (GradingError, ParameterError) as error:
        logger.error("%s", error)
        return 2

    submissions = table.groupby(["student_id", "assignment_id"]).size().shape[0]
    failed = table[table["score"].isna()].groupby(["student_id", "assignment_id"]).size().shape[0]
    print(
        f"Graded {submissions - failed} of {submissions} submission(s); "
        f"{len(table)} part scores written to {args.output_csv}"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    # Run the imported module's main, so that log records carry the name "nasutils.grading", not "__main__".
    from nasutils.grading import main as _main

    sys.exit(_main())
