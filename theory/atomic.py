"""Atomic file output: the one way every package in the project writes a result file.

A result is written to a temporary file in the destination's folder and moved over the
destination with :func:`os.replace`, so a reader sees the old file or the new one, never half
of one, and an interrupted write leaves no partial destination. The temporary name is
``.<name>.tmp-<pid>-<random><suffix>``: hidden, recognisable (:func:`remove_stale_temporaries`
finds the ones a killed process left behind) and ending in the destination's suffix, so writers
that infer the format from the name (``np.savez``, ``Figure.savefig``) do the right thing.
"""
from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_text", "check_output_path",
           "remove_stale_temporaries"]


def _file_mode() -> int:
    # Read the umask without changing it for other threads for longer than two calls.
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def check_output_path(path) -> Path:
    """Return ``path`` as a :class:`~pathlib.Path` after checking that a file can be written there.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.

    Returns
    -------
    pathlib.Path

    Raises
    ------
    TypeError
        If ``path`` is not a string or path-like object.
    FileNotFoundError
        If the destination's folder does not exist.
    IsADirectoryError
        If the destination is an existing folder.

    Examples
    --------
    >>> check_output_path("/no/such/folder/x.csv")
    Traceback (most recent call last):
    ...
    FileNotFoundError: cannot write /no/such/folder/x.csv: folder /no/such/folder does not exist
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"output path must be a string or path, not {type(path).__name__}")
    path = Path(path)
    if str(path) in ("", "."):
        raise FileNotFoundError("output path is empty")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a folder; give a file name")
    folder = path.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    return path


@contextlib.contextmanager
def atomic_path(path, *, make_parents: bool = False):
    """Context manager yielding a temporary path that replaces ``path`` on success.

    Parameters
    ----------
    path : str or os.PathLike
        Destination file.
    make_parents : bool, default False
        Create missing parent folders instead of raising.

    Yields
    ------
    pathlib.Path
        Temporary file in the destination's folder, with the destination's suffix. Write it
        completely inside the ``with`` block; it is moved over ``path`` when the block ends
        without an exception and removed otherwise.

    Raises
    ------
    FileNotFoundError, IsADirectoryError, TypeError
        As :func:`check_output_path`.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as tmp:
    ...     _ = tmp.write_text("hello")
    >>> (folder / "a.txt").read_text(), sorted(p.name for p in folder.iterdir())
    ('hello', ['a.txt'])
    """
    if make_parents and isinstance(path, (str, os.PathLike)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    path = check_output_path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{path.suffix}")
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def atomic_write_bytes(path, data: bytes, *, make_parents: bool = False) -> Path:
    """Write ``data`` to ``path`` atomically; return the path."""
    with atomic_path(path, make_parents=make_parents) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path, text: str, *, make_parents: bool = False) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; return the path."""
    return atomic_write_bytes(path, text.encode("utf-8"), make_parents=make_parents)


def remove_stale_temporaries(path) -> list[Path]:
    """Remove temporaries of ``path`` left by processes that no longer run.

    A process killed during :func:`atomic_path` leaves ``.<name>.tmp-<pid>-...``; those whose
    ``pid`` is not a running process are deleted (those of live processes are kept: another
    writer may be using them).

    Returns
    -------
    list of pathlib.Path
        The files removed.
    """
    path = Path(path)
    removed = []
    if not path.parent.is_dir():
        return removed
    for tmp in path.parent.glob(f".{path.name}.tmp-*"):
        pid_text = tmp.name[len(f".{path.name}.tmp-"):].split("-", 1)[0]
        if pid_text.isdigit() and _alive(int(pid_text)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed.append(tmp)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
