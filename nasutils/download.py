"""One checksum-verified, atomic file download, shared by the dataset and CIFAR-10 loaders."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["DownloadError", "download_verified", "sha256_file"]

logger = logging.getLogger(__name__)


class DownloadError(Exception):
    """Raised when a download fails or delivers bytes with the wrong checksum."""


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Return the hex SHA-256 digest of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_verified(
    url: str, destination: Path, sha256: str, *, what: str, timeout: float, offline_hint: str
) -> Path:
    """Download ``what`` from ``url`` to ``destination`` and keep it only if its SHA-256 is ``sha256``.

    The bytes go to a temporary file beside ``destination`` that replaces it
    only after the checksum matched, so a failed or corrupt download leaves no
    file behind. ``timeout`` is the socket timeout in seconds. ``offline_hint``
    ends the error message of a failed request, telling the user what to do
    without a network. Raises :class:`DownloadError`.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    logger.info("Downloading %s to %s", url, destination)
    digest = hashlib.sha256()
    partial: Path | None = None
    try:
        with tempfile.NamedTemporaryFile(
            dir=destination.parent, prefix=f".{destination.name}.", suffix=".part", delete=False
        ) as handle:
            partial = Path(handle.name)
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    for chunk in iter(lambda: response.read(1 << 20), b""):
                        digest.update(chunk)
                        handle.write(chunk)
            except (urllib.error.URLError, TimeoutError, OSError) as error:
                reason = getattr(error, "reason", error)
                raise DownloadError(
                    f"Could not download {what} from {url}: {reason}. {offline_hint}"
                ) from error

        if digest.hexdigest() != sha256:
            raise DownloadError(
                f"The file downloaded from {url} has SHA-256 {digest.hexdigest()}, expected {sha256}. "
                "Nothing was written; the server may have sent an error page or another file."
            )
        os.replace(partial, destination)
    finally:
        # After a successful os.replace the temporary name no longer exists.
        if partial is not None:
            partial.unlink(missing_ok=True)
    logger.info("Saved %s (SHA-256 verified)", destination)
    return destination
