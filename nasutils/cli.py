"""The ``nasutils`` command: run the book's notebooks with papermill and build the book.

``nasutils book`` executes every numbered notebook of ``notebooks/`` under one
profile into ``book/executed/`` and builds the HTML with Jupyter Book 1 into
``_build/html``, treating every Sphinx warning as an error. ``nasutils run``
executes one notebook with papermill parameters, checked against those the
notebook declares.
"""

from __future__ import annotations

import argparse
import ast
import html
import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import nbformat
import yaml

from .claims import claims_markdown
from .data import DATASET_SHA256, DATASET_URL, Dataset, DatasetError, locate_dataset, read_dataset
from .profiles import PROFILES, UnknownProfileError, get_profile

__all__ = ["main"]

logger = logging.getLogger("nasutils.cli")

EXECUTED_DIR = Path("book") / "executed"
RUNS_DIR = Path("_build") / "runs"


class CommandError(RuntimeError):
    """A failure the command reports in one line and exits non-zero for."""


def project_root() -> Path:
    """Return the book's root: the nearest folder upward from here that contains ``_config.yml``."""
    for folder in (Path.cwd(), *Path.cwd().parents):
        if (folder / "_config.yml").is_file() and (folder / "notebooks").is_dir():
            return folder
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "_config.yml").is_file():
        return checkout
    raise CommandError("No book found: run this command inside the project checkout (it has _config.yml).")


def find_notebooks(root: Path, selected: Sequence[str] | None = None) -> list[Path]:
    """Return the numbered notebooks, or those whose names start with one of ``selected``."""
    notebooks = sorted((root / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if not selected:
        return notebooks
    chosen = [nb for nb in notebooks if any(nb.stem.startswith(prefix) for prefix in selected)]
    unmatched = [prefix for prefix in selected if not any(nb.stem.startswith(prefix) for nb in notebooks)]
    if unmatched:
        names = ", ".join(nb.stem for nb in notebooks)
        raise CommandError(f"No notebook matches {', '.join(unmatched)}. Notebooks: {names}.")
    return chosen


def parse_value(text: str) -> Any:
    """Read a parameter value as a Python literal (``3``, ``0.5``, ``None``), else keep the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def check_declared(notebook: Path, parameters: dict[str, Any]) -> None:
    """Reject parameters that the notebook's ``parameters`` cell does not assign."""
    import papermill

    declared = papermill.inspect_notebook(str(notebook))
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise CommandError(
            f"Unknown parameter(s) {', '.join(unknown)} for {notebook.name}. "
            f"It accepts: {', '.join(declared)}."
        )


def execute_notebook(notebook: Path, output: Path, parameters: dict[str, Any], workdir: Path) -> None:
    """Run one notebook with papermill; raise :class:`CommandError` when a cell fails."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    check_declared(notebook, parameters)
    output.parent.mkdir(parents=True, exist_ok=True)
    workdir.mkdir(parents=True, exist_ok=True)
    logger.info("Executing %s with %s", notebook.name, parameters)
    try:
        papermill.execute_notebook(
            str(notebook),
            str(output),
            parameters=parameters,
            cwd=str(workdir),
            kernel_name="python3",
            progress_bar=False,
        )
    except PapermillExecutionError as error:
        raise CommandError(
            f"{notebook.name} failed in cell {error.exec_count}: {error.ename}: {error.evalue.rstrip('.')}. "
            f"The partly executed notebook is {output}."
        ) from error
    hide_injected_parameters(output)


def hide_injected_parameters(path: Path) -> None:
    """Remove papermill's injected-parameters cell from the rendered page.

    The values it holds, with local paths, are in the page's provenance table.
    """
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        tags = cell.metadata.get("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            cell.metadata["tags"] = [*tags, "remove-cell"]
    nbformat.write(notebook, path)


def footer_html(profile: str, data_path: Path, sha256: str, pinned: bool) -> str:
    """Return the page footer that names the profile and data file every page was built from."""
    status = "the pinned AnalogNAS file" if pinned else "not the pinned AnalogNAS file"
    return html.escape(
        f"Built with profile '{profile}' from {data_path.name} (SHA-256 {sha256}, {status})."
    )


def write_generated_pages(root: Path, dataset: Dataset) -> None:
    """Write the Markdown tables that the prose pages include: profiles, data provenance, claims."""
    folder = root / EXECUTED_DIR
    folder.mkdir(parents=True, exist_ok=True)

    fields = [key for key in next(iter(PROFILES.values())).as_dict() if key not in {"name", "description"}]
    lines = ["| setting | " + " | ".join(PROFILES) + " |", "|---|" + "---|" * len(PROFILES)]
    lines.append("| purpose | " + " | ".join(p.description for p in PROFILES.values()) + " |")
    for field in fields:
        lines.append(f"| `{field}` | " + " | ".join(str(p.as_dict()[field]) for p in PROFILES.values()) + " |")
    (folder / "profiles.md").write_text("\n".join(lines) + "\n")

    status = "matches" if dataset.matches_pinned else "does NOT match"
    provenance = [
        "| | |",
        "|---|---|",
        f"| download address | <{DATASET_URL}> |",
        f"| pinned SHA-256 | `{DATASET_SHA256}` |",
        f"| file used for this build | `{dataset.path.name}`, {len(dataset)} rows |",
        f"| its SHA-256 | `{dataset.sha256}` ({status} the pinned file) |",
    ]
    (folder / "data_provenance.md").write_text("\n".join(provenance) + "\n")
    (folder / "claims.md").write_text(claims_markdown())


def build_html(root: Path, footer: str) -> None:
    """Build ``_build/html`` with Jupyter Book 1, with every Sphinx warning an error."""
    config = yaml.safe_load((root / "_config.yml").read_text())
    config.setdefault("html", {})["extra_footer"] = footer
    generated = root / "_build" / "book_config.yml"
    generated.parent.mkdir(parents=True, exist_ok=True)
    generated.write_text(yaml.safe_dump(config, sort_keys=False))

    command = [
        str(Path(sys.executable).with_name("jupyter-book")),
        "build", str(root), "--config", str(generated), "--all", "-W", "-n", "--keep-going",
    ]  # fmt: skip
    logger.info("Building the book: %s", " ".join(command))
    result = subprocess.run(command, cwd=root, check=False)
    if result.returncode != 0:
        raise CommandError(f"Jupyter Book failed (exit code {result.returncode}); see the warnings above.")


def command_book(args: argparse.Namespace) -> None:
    root = project_root()
    profile = get_profile(args.profile)
    data_path = locate_dataset(args.data).resolve()
    dataset = read_dataset(data_path, strict=args.strict)

    if not args.no_execute:
        failures = []
        for notebook in find_notebooks(root, args.only):
            parameters = {"profile": profile.name, "data_path": str(data_path)}
            try:
                execute_notebook(
                    notebook, root / EXECUTED_DIR / notebook.name, parameters, root / "_build" / "work"
                )
            except CommandError as error:
                logger.error("%s", error)
                failures.append(notebook.name)
        if failures:
            raise CommandError(f"{len(failures)} notebook(s) failed: {', '.join(failures)}.")

    write_generated_pages(root, dataset)
    build_html(root, footer_html(profile.name, data_path, dataset.sha256, dataset.matches_pinned))
    logger.info("Book built: %s", root / "_build" / "html" / "index.html")


def command_run(args: argparse.Namespace) -> None:
    root = project_root()
    matches = find_notebooks(root, [args.notebook])
    if len(matches) != 1:
        names = ", ".join(nb.stem for nb in matches)
        raise CommandError(f"{args.notebook!r} matches several notebooks ({names}); give a longer prefix.")
    notebook = matches[0]
    get_profile(args.profile)
    parameters: dict[str, Any] = {"profile": args.profile}
    if args.data is not None:
        parameters["data_path"] = str(locate_dataset(args.data).resolve())
    for name, value in args.parameter or []:
        parameters[name] = parse_value(value)
    output = Path(args.output) if args.output else root / RUNS_DIR / f"{notebook.stem}-{args.profile}.ipynb"
    check_declared(notebook, parameters)
    os.environ["NASUTILS_ARTIFACTS"] = str(run_artifacts(root, args.profile, args.artifacts))
    execute_notebook(notebook, output, parameters, root / "_build" / "work")
    logger.info("Wrote %s", output)


def run_artifacts(root: Path, profile: str, folder: str | None) -> Path:
    """Return the artifacts root of single-chapter runs, kept apart from the book's.

    A run with other parameters must not change what the book's later chapters
    read, so runs use ``_build/runs/artifacts`` (or ``folder``). On first use
    it starts as a copy of the book's artifacts of ``profile``, so a chapter
    finds what the earlier chapters of the last book build saved.
    """
    target = Path(folder) if folder else root / RUNS_DIR / "artifacts"
    book_artifacts = root / "artifacts" / profile
    if not (target / profile).exists() and book_artifacts.is_dir():
        shutil.copytree(book_artifacts, target / profile)
        logger.info("Copied the book's %s artifacts to %s", profile, target / profile)
    return target


def command_profiles(args: argparse.Namespace) -> None:
    for profile in PROFILES.values():
        sys.stdout.write(f"{profile.name}: {profile.description}\n")
        for key, value in profile.as_dict().items():
            if key not in {"name", "description"}:
                sys.stdout.write(f"    {key} = {value}\n")


def command_data(args: argparse.Namespace) -> None:
    path = locate_dataset(args.data)
    dataset = read_dataset(path, strict=args.strict)
    sys.stdout.write(f"{path}\n{len(dataset)} architectures, SHA-256 {dataset.sha256}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nasutils", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    commands = parser.add_subparsers(dest="command", required=True)

    def add_data_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--data",
            default=None,
            help="dataset CSV file or the folder that contains it (default: $NASUTILS_DATA, then data/, "
            "then a download)",
        )
        sub.add_argument(
            "--strict", action="store_true", help="fail when the data file differs from the pinned dataset"
        )

    book = commands.add_parser("book", help="execute every notebook and build the HTML book")
    book.add_argument("--profile", default="quick", help=f"run sizes: one of {', '.join(PROFILES)}")
    add_data_options(book)
    book.add_argument("--only", nargs="+", metavar="PREFIX", help="execute only notebooks starting with these")
    book.add_argument("--no-execute", action="store_true", help="reuse the notebooks in book/executed/")
    book.set_defaults(handler=command_book)

    run = commands.add_parser("run", help="execute one notebook with papermill parameters")
    run.add_argument("notebook", help="notebook name or its number prefix, for example 01")
    run.add_argument("--profile", default="quick", help=f"run sizes: one of {', '.join(PROFILES)}")
    add_data_options(run)
    run.add_argument(
        "-p", "--parameter", nargs=2, action="append", metavar=("NAME", "VALUE"),
        help="set a notebook parameter; VALUE is read as a Python literal when it parses as one",
    )  # fmt: skip
    run.add_argument("-o", "--output", help="executed notebook path (default: _build/runs/NAME-PROFILE.ipynb)")
    run.add_argument(
        "--artifacts",
        help="folder for the models and results that chapters pass on (default: _build/runs/artifacts, "
        "started as a copy of the book's artifacts/)",
    )
    run.set_defaults(handler=command_run)

    profiles = commands.add_parser("profiles", help="list the profiles and their settings")
    profiles.set_defaults(handler=command_profiles)

    data = commands.add_parser("data", help="locate (or download) and validate the dataset")
    add_data_options(data)
    data.set_defaults(handler=command_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Warnings such as a checksum mismatch read as log lines, not as Python tracebacks.
    logging.captureWarnings(True)
    try:
        args.handler(args)
    except (CommandError, DatasetError, UnknownProfileError) as error:
        logger.error("%s", error)
        return 1
    return 0


