from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from nasutils.data import (
    DATASET_FILENAME,
    ENV_VAR,
    ChecksumMismatchError,
    ChecksumMismatchWarning,
    DatasetDownloadError,
    DatasetNotFoundError,
    DatasetValidationError,
    accuracy_bins,
    download_dataset,
    load_dataset,
    locate_dataset,
    read_dataset,
)

EXPECTED_BIN_COUNTS = [77, 91, 67, 60, 58, 58, 113, 98, 107, 87, 91, 95, 103, 95]


# --- the real file ---------------------------------------------------------------


def test_real_dataset_shape_and_checksum(real_dataset):
    assert len(real_dataset) == 1200
    assert real_dataset.matches_pinned
    assert real_dataset.X.shape == (1200, 22)
    assert real_dataset.X.dtype == np.int64


def test_real_dataset_bin_counts(real_dataset):
    assert np.bincount(real_dataset.bins).tolist() == EXPECTED_BIN_COUNTS


def test_block_letters_become_codes(real_dataset):
    # First data row: M=1, convblock1 "B" -> 2; unused blocks hold 0.
    first = real_dataset.frame.iloc[0]
    assert first["convblock1"] == 2
    assert first["convblock2"] == 0
    assert set(np.unique(real_dataset.frame["convblock1"])) == {1, 2, 3, 4}


def test_typed_architectures(real_dataset):
    architectures = real_dataset.architectures()
    assert len(architectures) == 1200
    assert architectures[0].out_channel0 == 117
    assert architectures[0].blocks[0].convblock == "B"


# --- bins --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accuracy", "expected"),
    [(0.6, 0), (0.6499, 0), (0.65, 1), (0.9, 6), (0.905, 7), (0.9349, 12), (0.935, 13), (0.94, 13)],
)
def test_bin_edges_go_to_the_upper_bin(accuracy, expected):
    assert accuracy_bins([accuracy])[0] == expected


def test_accuracy_outside_bins_is_rejected():
    with pytest.raises(ValueError, match=r"outside the binned range \[0.6, 0.94\]: 0.5990, 0.9500"):
        accuracy_bins([0.7, 0.599, 0.95])


# --- bad input: each defect is named with its line, column, value and allowed range --


def read_variant(path: Path):
    with pytest.warns(ChecksumMismatchWarning):
        return read_dataset(path)


def test_unchanged_copy_reads_without_warning(csv_variant):
    assert len(read_dataset(csv_variant(), strict=True)) == 1200


def test_missing_column(csv_variant):
    with pytest.raises(DatasetValidationError, match=r"column 'AVM': value '', expected this column, which is missing"):
        read_variant(csv_variant(drop_columns=["AVM"]))


def test_extra_column(csv_variant):
    with pytest.raises(DatasetValidationError, match=r"column 'KS0': value 'KS0', expected no such column"):
        read_variant(csv_variant(add_columns=["KS0"]))


def test_missing_value(csv_variant):
    with pytest.raises(DatasetValidationError, match=r"line 5, column 'B1': value '', expected a value, found a missing value"):
        read_variant(csv_variant([(3, "B1", "")]))


def test_non_integer_depth(csv_variant):
    with pytest.raises(DatasetValidationError, match=r"line 2, column 'M': value '1.5', expected an integer in \[1, 5\]"):
        read_variant(csv_variant([(0, "M", "1.5")]))


def test_residual_blocks_above_16(csv_variant):
    with pytest.raises(DatasetValidationError, match=r"line 3, column 'R1': value '17', expected an integer in \[1, 16\]"):
        read_variant(csv_variant([(1, "R1", "17")]))


def test_convblock_letter_e(csv_variant):
    with pytest.raises(DatasetValidationError, match=r"line 2, column 'convblock1': value 'E', expected a block type A, B, C or D"):
        read_variant(csv_variant([(0, "convblock1", "E")]))


def test_nonzero_field_above_m(csv_variant):
    # Row 0 has M = 1, so main block 3 is unused.
    with pytest.raises(DatasetValidationError, match=r"line 2, column 'B3': value '4', expected 0 because main block 3 is above M"):
        read_variant(csv_variant([(0, "B3", "4")]))


def test_accuracy_above_one(csv_variant):
    with pytest.raises(DatasetValidationError, match=r"line 2, column '1_day_accuracy': value '1.2', expected an accuracy fraction in \[0, 1\]"):
        read_variant(csv_variant([(0, "1_day_accuracy", "1.2")]))


def test_accuracy_below_the_bins(csv_variant):
    with pytest.raises(DatasetValidationError, match=r"value '0.5', expected a value in \[0.6, 0.94\]"):
        read_variant(csv_variant([(0, "1_day_accuracy", "0.5")]))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DatasetValidationError, match="the file is empty"), pytest.warns(ChecksumMismatchWarning):
        read_dataset(path)


def test_header_only(csv_variant):
    with pytest.raises(DatasetValidationError, match="expected data rows after the header"):
        read_variant(csv_variant(rows=0))


def test_every_bad_row_is_listed_at_once(csv_variant):
    path = csv_variant([(0, "M", "7"), (10, "convblock1", "E"), (500, "AVM", "x"), (1199, "R1", "0")])
    with pytest.raises(DatasetValidationError) as caught:
        read_variant(path)
    problems = caught.value.problems
    assert [(p.line, p.column) for p in problems][:1] == [(2, "M")]
    assert {(p.line, p.column) for p in problems} >= {(2, "M"), (12, "convblock1"), (502, "AVM"), (1201, "R1")}
    message = str(caught.value)
    assert "line 1201, column 'R1': value '0', expected an integer in [1, 16]" in message
    assert "line 502, column 'AVM': value 'x', expected a number" in message


def test_ragged_row(csv_variant):
    path = csv_variant()
    lines = path.read_text().splitlines()
    lines[3] += ",9"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetValidationError, match=r"line 4: value .*expected 25 fields, found 26"):
        read_variant(path)


def test_checksum_mismatch_warns_with_both_hashes(csv_variant, real_dataset):
    path = csv_variant([(0, "AVM", "7.5")])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.warns(ChecksumMismatchWarning, match=rf"SHA-256 {digest}, but .* has {real_dataset.sha256}"):
        dataset = read_dataset(path)
    assert not dataset.matches_pinned
    with pytest.raises(ChecksumMismatchError, match=digest):
        read_dataset(path, strict=True)


def test_missing_path_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "data.csv"
    with pytest.raises(DatasetNotFoundError, match=r"Dataset path '.*nowhere/data.csv' from the path argument does not exist"):
        locate_dataset(missing)
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        read_dataset(missing)


# --- where the file is found ------------------------------------------------------


def test_locate_order(real_csv, tmp_path, monkeypatch):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / DATASET_FILENAME).write_bytes(real_csv.read_bytes())
    elsewhere = tmp_path / "other.csv"
    elsewhere.write_bytes(real_csv.read_bytes())

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert locate_dataset(data_dir=folder, download=False) == folder / DATASET_FILENAME

    monkeypatch.setenv(ENV_VAR, str(elsewhere))
    assert locate_dataset(data_dir=folder, download=False) == elsewhere
    assert locate_dataset(real_csv.parent, data_dir=folder) == real_csv

    monkeypatch.setenv(ENV_VAR, str(tmp_path / "missing"))
    with pytest.raises(DatasetNotFoundError, match=f"from the {ENV_VAR} environment variable does not exist"):
        locate_dataset(data_dir=folder)


def test_nothing_found_without_download(tmp_path, monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.raises(DatasetNotFoundError, match="No dataset found.*allow the download"):
        locate_dataset(data_dir=tmp_path, download=False)


# --- download, against a server on 127.0.0.1 ----------------------------------------


@pytest.fixture
def http_server(real_csv) -> Iterator[str]:
    payload = real_csv.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            bodies = {"/dataset.csv": payload, "/truncated.csv": payload[:1000]}
            body = bodies.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_writes_verified_file(http_server, tmp_path, monkeypatch, real_dataset):
    monkeypatch.delenv(ENV_VAR, raising=False)
    path = locate_dataset(data_dir=tmp_path / "data", url=f"{http_server}/dataset.csv", timeout=10)
    assert path == tmp_path / "data" / DATASET_FILENAME
    assert read_dataset(path, strict=True).sha256 == real_dataset.sha256
    assert [p.name for p in path.parent.iterdir()] == [DATASET_FILENAME]


def test_download_with_wrong_checksum_leaves_nothing(http_server, tmp_path):
    destination = tmp_path / DATASET_FILENAME
    with pytest.raises(DatasetDownloadError, match="has SHA-256 [0-9a-f]{64}, expected d52b8f"):
        download_dataset(destination, url=f"{http_server}/truncated.csv", timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_download_http_error(http_server, tmp_path):
    with pytest.raises(DatasetDownloadError, match="Could not download the dataset from .*/missing.csv: Not Found"):
        download_dataset(tmp_path / DATASET_FILENAME, url=f"{http_server}/missing.csv", timeout=10)
    assert list(tmp_path.iterdir()) == []


def test_download_offline_message(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now, so the connection is refused as when offline.
    with pytest.raises(DatasetDownloadError, match=f"If this machine is offline, copy {DATASET_FILENAME} into"):
        download_dataset(tmp_path / DATASET_FILENAME, url=f"http://127.0.0.1:{port}/x.csv", timeout=5)
    assert list(tmp_path.iterdir()) == []


def test_load_dataset_uses_env(real_csv, monkeypatch):
    monkeypatch.setenv(ENV_VAR, str(real_csv.parent))
    assert os.fspath(load_dataset(download=False).path) == os.fspath(real_csv)


def test_folder_without_the_csv(tmp_path):
    with pytest.raises(DatasetNotFoundError, match=f"has no {DATASET_FILENAME}. Copy the file there"):
        locate_dataset(tmp_path)


def test_non_utf8_file(tmp_path):
    path = tmp_path / "binary.csv"
    path.write_bytes(b"out_channel0,M\xff\xfe\n")
    with pytest.raises(DatasetValidationError, match="expected UTF-8 text"), pytest.warns(ChecksumMismatchWarning):
        read_dataset(path)


def test_semicolon_separated_file(csv_variant):
    path = csv_variant()
    path.write_text(path.read_text().replace(",", ";"))
    with pytest.raises(DatasetValidationError, match="expected comma-separated columns; this header uses semicolons"):
        read_variant(path)


def test_strict_message_names_both_ways_out(csv_variant):
    with pytest.raises(ChecksumMismatchError, match=r"strict=False in Python, no --strict on the command line"):
        read_dataset(csv_variant([(0, "AVM", "7.5")]), strict=True)
