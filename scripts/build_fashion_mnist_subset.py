"""Builds vograd/tasks/datasets/data/fashion_mnist_subset.npz from the Debian package files.

The subset is the first ``--train-per-class`` training and ``--test-per-class``
test images of every class, in the files' own order (which is already
shuffled), so it is class-balanced and reproducible bit for bit. Source:
``dataset-fashion-mnist`` (Zalando Research, MIT licence), installed by
``apt-get install dataset-fashion-mnist`` under /usr/share/datasets/fashion-mnist.

Usage: python scripts/build_fashion_mnist_subset.py [--debian-dir DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import os

import numpy as np

from vograd.tasks.datasets.idx import read_idx_images, read_idx_labels

DEFAULT_DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
DEFAULT_OUT = os.path.join(
    os.path.dirname(__file__), "..", "tasks", "datasets", "data", "fashion_mnist_subset.npz"
)


def first_per_class(labels: np.ndarray, per_class: int, num_classes: int = 10) -> np.ndarray:
    """Returns sorted indices of the first ``per_class`` examples of each class."""
    chosen = []
    for c in range(num_classes):
        where = np.flatnonzero(labels == c)
        if where.size < per_class:
            raise ValueError(f"class {c} has only {where.size} examples, need {per_class}")
        chosen.append(where[:per_class])
    return np.sort(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--debian-dir", default=DEFAULT_DEBIAN_DIR)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--train-per-class", type=int, default=600)
    parser.add_argument("--test-per-class", type=int, default=100)
    args = parser.parse_args()

    arrays = {}
    for split, prefix, per_class in (
        ("train", "train", args.train_per_class),
        ("test", "t10k", args.test_per_class),
    ):
        images_path = os.path.join(args.debian_dir, f"{prefix}-images-idx3-ubyte.gz")
        images = read_idx_images(images_path)
        labels = read_idx_labels(os.path.join(args.debian_dir, f"{prefix}-labels-idx1-ubyte.gz"))
        idx = first_per_class(labels, per_class)
        arrays[f"{split}_images"] = images[idx]
        arrays[f"{split}_labels"] = labels[idx].astype(np.uint8)
        arrays[f"{split}_indices"] = idx.astype(np.int32)  # positions in the original files
        with open(images_path, "rb") as f:
            arrays[f"{split}_images_gz_sha256"] = np.array(hashlib.sha256(f.read()).hexdigest())
    arrays["provenance"] = np.array(
        "Fashion-MNIST (Zalando Research, MIT licence), first "
        f"{args.train_per_class} train / {args.test_per_class} test images per class "
        "of the Debian package dataset-fashion-mnist; built by "
        "scripts/build_fashion_mnist_subset.py"
    )
    out = os.path.abspath(args.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    np.savez_compressed(out, **arrays)
    print(f"wrote {out} ({os.path.getsize(out) / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
