# Two entry points: `make book` builds the HTML book, `make test` runs the tests.
# Both create the virtual environment in .venv on first use.
#
#   make book [PROFILE=quick|paper] [DATA=path/to/analognas_resnet_cifar10.csv]
#   make test

PYTHON ?= python3.11
VENV ?= .venv
PROFILE ?= quick
DATA ?=

BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: book test install clean assignments grade

install: $(STAMP)

# torch is installed first and pinned to the CPU build; an unpinned torch pulls a
# multi-gigabyte CUDA build.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "$(PYTHON) not found; set PYTHON=/path/to/python3.11" >&2; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[dev,analog]"
	touch $(STAMP)

book: $(STAMP)
	$(BIN)/nasutils book --profile $(PROFILE) $(if $(DATA),--data "$(DATA)")

test: $(STAMP)
	$(BIN)/python -m pytest

# Classroom use (see book/instructors.md). DATA must name the CSV file here.
ASSIGNMENT_PARAMS ?=

assignments: $(STAMP)
	$(BIN)/python -m nasutils.grading generate assignments _build/release --force $(if $(DATA),-p data_path "$(abspath $(DATA))") $(ASSIGNMENT_PARAMS)

grade: $(STAMP)
	$(BIN)/python -m nasutils.grading grade submitted _build/grades.csv $(if $(DATA),-p data_path "$(abspath $(DATA))") $(ASSIGNMENT_PARAMS)

clean:
	rm -rf _build book/executed
