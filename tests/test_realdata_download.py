"""Download cache and checksum logic, on local files only (nothing is ever downloaded here)."""

import gzip
import hashlib
import io
import json
import tarfile
import urllib.error
import zipfile

import numpy as np
import pytest

from realdata import download as dl
from realdata.__main__ import main
from realdata.download import DownloadError, RemoteDataset, RemoteFile, fetch


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class _Opener:
    """Serves ``payloads`` (url -> bytes) like urlopen; counts calls; never touches the network."""

    def __init__(self, payloads, fail=None):
        self.payloads, self.fail, self.calls = payloads, fail, []

    def __call__(self, url, timeout=None):
        self.calls.append(url)
        if self.fail is not None:
            raise self.fail
        response = io.BytesIO(self.payloads[url])
        response.headers = {"Content-Length": str(len(self.payloads[url]))}
        return response


def _no_network(url, timeout=None):
    raise AssertionError(f"the cache should have answered, but {url} was opened")


@pytest.fixture
def toy(monkeypatch):
    """A one-file dataset 'toy' registered for the test."""
    payload = b"0123456789" * 1000
    remote = RemoteFile("https://example.invalid/data/toy.bin", _sha256(payload), len(payload))
    monkeypatch.setitem(dl.DATASETS, "toy", RemoteDataset("toy", (remote,), unpack=False))
    return remote, payload


def _leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


def test_good_file_is_cached_and_the_second_call_uses_the_cache(tmp_path, toy):
    remote, payload = toy
    opener = _Opener({remote.url: payload})
    path = fetch("toy", tmp_path, opener=opener)
    assert path == tmp_path / "toy" and (path / "toy.bin").read_bytes() == payload
    assert opener.calls == [remote.url]
    assert json.loads((path / ".complete").read_text()) == {"toy.bin": remote.checksum}
    assert _leftovers(tmp_path) == [".complete"]  # no temporary left behind
    assert fetch("toy", tmp_path, opener=_no_network) == path


@pytest.mark.parametrize("corrupt", ["flipped byte", "truncated"])
def test_bad_checksum_is_rejected_and_nothing_is_kept(tmp_path, toy, corrupt):
    remote, payload = toy
    bad = (b"X" + payload[1:]) if corrupt == "flipped byte" else payload[:-10]
    bad_remote = RemoteFile(remote.url, remote.checksum)  # no size: only the checksum can tell
    dl.DATASETS["toy"] = RemoteDataset("toy", (bad_remote,), unpack=False)
    with pytest.raises(DownloadError, match=r"toy.bin: checksum mismatch \(sha256 [0-9a-f]{64}, "
                                            r"expected [0-9a-f]{64}\); nothing was kept"):
        fetch("toy", tmp_path, opener=_Opener({remote.url: bad}))
    assert list((tmp_path / "toy").iterdir()) == []


def test_wrong_size_is_rejected_and_nothing_is_kept(tmp_path, toy):
    remote, payload = toy
    with pytest.raises(DownloadError, match=r"got 9990 bytes, expected 10000; nothing was kept"):
        fetch("toy", tmp_path, opener=_Opener({remote.url: payload[:-10]}))
    assert list((tmp_path / "toy").iterdir()) == []


@pytest.mark.parametrize("error", [urllib.error.URLError("[Errno -3] name resolution failed"),
                                   ConnectionRefusedError(111, "Connection refused"),
                                   TimeoutError("timed out")])
def test_offline_error_names_the_url_and_the_folder_for_a_manual_copy(tmp_path, toy, error):
    remote, _ = toy
    with pytest.raises(DownloadError) as info:
        fetch("toy", tmp_path, opener=_Opener({}, fail=error))
    msg = str(info.value)
    assert msg.startswith(f"cannot reach {remote.url}: ")
    assert msg.endswith(f"; download it by hand into {tmp_path / 'toy'}")
    assert list((tmp_path / "toy").iterdir()) == []


def test_a_file_placed_by_hand_is_verified_and_used_without_network(tmp_path, toy):
    remote, payload = toy
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy.bin").write_bytes(payload)
    assert fetch("toy", tmp_path, opener=_no_network) == tmp_path / "toy"


def test_a_corrupt_file_placed_by_hand_is_downloaded_again(tmp_path, toy):
    remote, payload = toy
    (tmp_path / "toy").mkdir()
    (tmp_path / "toy" / "toy.bin").write_bytes(b"garbage")
    opener = _Opener({remote.url: payload})
    fetch("toy", tmp_path, opener=opener)
    assert opener.calls == [remote.url]
    assert (tmp_path / "toy" / "toy.bin").read_bytes() == payload


def _zip_bytes(files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _tar_gz_bytes(files):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["zip", "tar.gz"])
def test_archives_are_unpacked_and_removed(tmp_path, monkeypatch, kind):
    files = {"MNLI/train.tsv": b"a\tb\n", "MNLI/dev_matched.tsv": b"c\td\n"}
    payload = _zip_bytes(files) if kind == "zip" else _tar_gz_bytes(files)
    remote = RemoteFile(f"https://example.invalid/MNLI.{kind}", _sha256(payload), len(payload))
    monkeypatch.setitem(dl.DATASETS, "arch", RemoteDataset("arch", (remote,), unpack=True,
                                                          data_path="MNLI"))
    path = fetch("arch", tmp_path, opener=_Opener({remote.url: payload}))
    assert path == tmp_path / "arch" / "MNLI"
    assert sorted(p.name for p in path.iterdir()) == ["dev_matched.tsv", "train.tsv"]
    assert not (tmp_path / "arch" / remote.filename).exists()  # the archive is gone
    assert _leftovers(tmp_path) == [".complete"]
    assert fetch("arch", tmp_path, opener=_no_network) == path


def test_archive_without_the_expected_folder_is_an_error_and_not_marked_complete(tmp_path,
                                                                                 monkeypatch):
    payload = _zip_bytes({"other/x.txt": b"x"})
    remote = RemoteFile("https://example.invalid/a.zip", _sha256(payload))
    monkeypatch.setitem(dl.DATASETS, "arch", RemoteDataset("arch", (remote,), unpack=True,
                                                          data_path="MNLI"))
    with pytest.raises(DownloadError, match="the files hold no MNLI"):
        fetch("arch", tmp_path, opener=_Opener({remote.url: payload}))
    assert not (tmp_path / "arch" / ".complete").exists()


def test_mnist_files_fetched_into_the_cache_load_as_mnist(tmp_path, monkeypatch):
    # The real MNIST entry with its published md5s replaced by those of tiny IDX files.
    rng = np.random.default_rng(0)
    files, payloads = [], {}
    for stem, shape in (("train-images-idx3-ubyte", (6, 28, 28)), ("train-labels-idx1-ubyte", (6,)),
                        ("t10k-images-idx3-ubyte", (2, 28, 28)), ("t10k-labels-idx1-ubyte", (2,))):
        arr = rng.integers(0, 10, size=shape, dtype=np.uint8)
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(s.to_bytes(4, "big") for s in shape)
        data = gzip.compress(header + arr.tobytes())
        url = f"https://example.invalid/mnist/{stem}.gz"
        files.append(RemoteFile(url, "md5:" + hashlib.md5(data).hexdigest()))
        payloads[url] = data
    monkeypatch.setitem(dl.DATASETS, "mnist", RemoteDataset("mnist", tuple(files), unpack=False))
    monkeypatch.setattr(dl.urllib.request, "urlopen", _Opener(payloads))
    monkeypatch.setenv("ATTNBIAS_CACHE", str(tmp_path / "env-cache"))
    path = fetch("mnist")
    assert path == tmp_path / "env-cache" / "mnist"
    from realdata.train import load_preset_data

    bundle = load_preset_data("mnist-vit", path)
    assert (len(bundle.train), len(bundle.heldout)) == (6, 2) and bundle.stand_in_for is None


def test_the_official_entries_name_their_sources_and_checksums():
    assert sorted(dl.DATASETS) == ["cifar10", "civil-comments", "mnist", "mnli"]
    for dataset in dl.DATASETS.values():
        for remote in dataset.files:
            algo, _, digest = remote.checksum.partition(":")
            assert remote.url.startswith("https://")
            assert (algo, len(digest)) in (("md5", 32), ("sha256", 64)), remote
    md5 = {r.filename: r.checksum for r in dl.DATASETS["mnist"].files}
    assert md5["train-images-idx3-ubyte.gz"] == "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873"
    assert dl.DATASETS["cifar10"].files[0].checksum == "md5:c58f30108f718f92721af3b95e74349a"


@pytest.mark.parametrize("name, error, match", [
    ("imagenet", ValueError, "no download for 'imagenet'; choose one of"),
    (None, TypeError, "dataset name must be a string, not NoneType"),
    (3, TypeError, "dataset name must be a string, not int"),
])
def test_fetch_rejects_bad_names(tmp_path, name, error, match):
    with pytest.raises(error, match=match):
        fetch(name, tmp_path)


def test_cache_that_is_a_file_is_refused(tmp_path, toy):
    (tmp_path / "cache").write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        fetch("toy", tmp_path / "cache", opener=_no_network)


def test_cli_download_offline_is_one_error_line_and_no_run_folder(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(dl.urllib.request, "urlopen",
                        _Opener({}, fail=urllib.error.URLError("offline")))
    rc = main(["train", "--preset", "mnist-vit", "--optimizer", "sgd", "--download",
               "--cache-dir", str(tmp_path / "cache"), "--no-progress", "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1
    assert err.startswith("error: cannot reach https://ossci-datasets.s3.amazonaws.com/mnist/")
    assert not (tmp_path / "run").exists()


def test_cli_download_for_a_preset_without_one_is_refused(tmp_path, capsys):
    rc = main(["train", "--preset", "bbc-bert", "--optimizer", "sgd", "--download",
               "-o", str(tmp_path / "run")])
    assert rc == 2
    assert "preset bbc-bert has no download" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
