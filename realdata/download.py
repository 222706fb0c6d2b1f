"""The paper's datasets from their official sources, checksum-verified, into a local cache.

Nothing here runs unless asked (``python -m realdata download NAME``, ``train/compare
--download`` or :func:`fetch`). Each file is streamed to a temporary beside its destination,
its checksum (the one the source or TensorFlow Datasets publishes) is verified, and only then
is it moved into place; archives are unpacked into a temporary folder that is renamed when
complete, and a ``.complete`` marker is written last. So an interrupted or corrupted download
never leaves a file that looks usable, and a second call finds the cache and touches no network.

Cache folder: ``cache_dir`` when given, else the environment variable ``ATTNBIAS_CACHE``, else
``~/.cache/attnbias``; dataset ``NAME`` goes to ``<cache>/NAME``. A file put there by hand
(e.g. on a machine without internet) is used when its checksum matches.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from theory.atomic import atomic_path, atomic_write_text

__all__ = ["DownloadError", "RemoteFile", "RemoteDataset", "DATASETS", "default_cache_dir",
           "fetch"]

_CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A dataset could not be fetched or failed its checksum."""


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset at its official address.

    Attributes
    ----------
    url : str
    checksum : str
        ``"md5:<hex>"`` or ``"sha256:<hex>"``, as published by the source (MNIST, CIFAR-10) or
        recorded by TensorFlow Datasets (MNLI, Civil Comments).
    size : int or None
        Size in bytes when published.
    """

    url: str
    checksum: str
    size: int | None = None

    @property
    def filename(self) -> str:
        """Last component of the URL."""
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class RemoteDataset:
    """A dataset: its files, whether they are archives to unpack, and the folder to load.

    Attributes
    ----------
    name : str
    files : tuple of RemoteFile
    unpack : bool
        Unpack each file (tar.gz or zip) and delete the archive.
    data_path : str
        Path, relative to ``<cache>/<name>``, that the preset's loader reads.
    """

    name: str
    files: tuple
    unpack: bool
    data_path: str = "."


_MNIST = "https://ossci-datasets.s3.amazonaws.com/mnist/"
DATASETS = {d.name: d for d in [
    RemoteDataset("mnist", (
        RemoteFile(_MNIST + "train-images-idx3-ubyte.gz", "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        RemoteFile(_MNIST + "train-labels-idx1-ubyte.gz", "md5:d53e105ee54ea40749a09fcbcd1e9432"),
        RemoteFile(_MNIST + "t10k-images-idx3-ubyte.gz", "md5:9fb629c4189551a2d022fa330f9573f3"),
        RemoteFile(_MNIST + "t10k-labels-idx1-ubyte.gz", "md5:ec29112dd5afa0611ce80d1b7f02629c"),
    ), unpack=False),
    RemoteDataset("cifar10", (
        RemoteFile("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
                   "md5:c58f30108f718f92721af3b95e74349a"),
    ), unpack=True, data_path="cifar-10-batches-py"),
    RemoteDataset("mnli", (
        RemoteFile("https://dl.fbaipublicfiles.com/glue/data/MNLI.zip",
                   "sha256:e7c1d896d26ed6caf700110645df426cc2d8ebf02a5ab743d5a5c68ac1c83633",
                   312783507),
    ), unpack=True, data_path="MNLI"),
    # TensorFlow Datasets' CivilComments 1.0 archive: train.csv, test_public_expanded.csv, ...
    RemoteDataset("civil-comments", (
        RemoteFile("https://storage.googleapis.com/jigsaw-unintended-bias-in-toxicity-"
                   "classification/civil_comments.zip",
                   "sha256:767b71a3d9dc7a2eceb234d0c3e7e38604e11f59c12ba1cbb888ffd4ce6b6271",
                   414947977),
    ), unpack=True),
]}


def default_cache_dir() -> Path:
    """``$ATTNBIAS_CACHE`` when set, else ``~/.cache/attnbias``."""
    env = os.environ.get("ATTNBIAS_CACHE")
    return Path(env).expanduser() if env else Path("~/.cache/attnbias").expanduser()


def _hasher(checksum: str):
    algo, _, digest = checksum.partition(":")
    return hashlib.new(algo), digest


def _verify(path: Path, remote: RemoteFile) -> bool:
    h, digest = _hasher(remote.checksum)
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest() == digest


def _download(remote: RemoteFile, dest: Path, opener: Callable, progress: bool) -> None:
    """Stream ``remote`` into ``dest`` through a temporary; verify before moving it in place."""
    h, digest = _hasher(remote.checksum)
    try:
        response = opener(remote.url, timeout=60)
    except (urllib.error.URLError, OSError, ValueError) as err:
        reason = getattr(err, "reason", err)
        raise DownloadError(f"cannot reach {remote.url}: {reason}; download it by hand into "
                            f"{dest.parent}") from err
    from tqdm.auto import tqdm

    total = remote.size or int(response.headers.get("Content-Length") or 0) or None
    with contextlib.closing(response), atomic_path(dest) as tmp, open(tmp, "wb") as out, \
            tqdm(total=total, unit="B", unit_scale=True, desc=remote.filename,
                 disable=not progress) as bar:
        try:
            for chunk in iter(lambda: response.read(_CHUNK), b""):
                out.write(chunk)
                h.update(chunk)
                bar.update(len(chunk))
        except OSError as err:
            raise DownloadError(f"download of {remote.url} broke off: {err}; try again, or "
                                f"download it by hand into {dest.parent}") from err
        out.flush()
        size = out.tell()
        if remote.size is not None and size != remote.size:
            raise DownloadError(f"{remote.url}: got {size} bytes, expected {remote.size}; "
                                "nothing was kept")
        if h.hexdigest() != digest:
            raise DownloadError(f"{remote.url}: checksum mismatch ({remote.checksum.split(':')[0]} "
                                f"{h.hexdigest()}, expected {digest}); nothing was kept")


def _unpack(archive: Path, root: Path) -> None:
    """Unpack ``archive`` into ``root`` through a temporary folder renamed entry by entry."""
    tmp = root / f".unpack-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp)
        else:
            with tarfile.open(archive) as tf:
                tf.extractall(tmp, filter="data")
        for entry in tmp.iterdir():
            if entry.name.startswith("__MACOSX"):
                continue
            target = root / entry.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(entry, target)
    except (zipfile.BadZipFile, tarfile.TarError) as err:
        raise DownloadError(f"{archive}: cannot unpack ({err})") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch(name: str, cache_dir: str | os.PathLike | None = None, *,
          opener: Callable | None = None, progress: bool = False) -> Path:
    """Download dataset ``name`` into the cache (once) and return the folder its loader reads.

    Parameters
    ----------
    name : {"mnist", "cifar10", "mnli", "civil-comments"}
    cache_dir : path or None
        Cache root (default :func:`default_cache_dir`).
    opener : callable or None
        ``opener(url, timeout=...)`` returning a file-like response (default
        :func:`urllib.request.urlopen`; tests pass a local one).
    progress : bool, default False
        Show a progress bar per file.

    Returns
    -------
    pathlib.Path
        ``<cache>/<name>/<data_path>``: pass it as ``--data`` / ``data=``.

    Raises
    ------
    TypeError
        If ``name`` is not a string.
    ValueError
        For an unknown dataset name.
    DownloadError
        When a source cannot be reached (the message names the URL and the folder to put the
        file in by hand), a download breaks off, or a checksum fails (nothing is kept).
    NotADirectoryError
        If the cache path is a file.

    Examples
    --------
    >>> fetch("imagenet")
    Traceback (most recent call last):
    ...
    ValueError: no download for 'imagenet'; choose one of ['cifar10', 'civil-comments', 'mnist', 'mnli']
    """
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a string, not {type(name).__name__}")
    if name not in DATASETS:
        raise ValueError(f"no download for {name!r}; choose one of {sorted(DATASETS)}")
    dataset = DATASETS[name]
    base = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    if base.exists() and not base.is_dir():
        raise NotADirectoryError(f"cache {base} is a file, not a folder")
    root = base / name
    data = root / dataset.data_path
    marker = root / ".complete"
    if marker.is_file() and data.exists():
        return data
    root.mkdir(parents=True, exist_ok=True)
    opener = opener or urllib.request.urlopen
    for remote in dataset.files:
        dest = root / remote.filename
        if dest.is_file() and _verify(dest, remote):
            pass  # downloaded before (or placed by hand)
        else:
            _download(remote, dest, opener, progress)
        if dataset.unpack:
            _unpack(dest, root)
            dest.unlink()
    if not data.exists():
        raise DownloadError(f"{name}: the files hold no {dataset.data_path}; the source changed?")
    atomic_write_text(marker, json.dumps({r.filename: r.checksum for r in dataset.files}) + "\n")
    return data
