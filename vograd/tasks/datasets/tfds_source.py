"""Reading a dataset that tensorflow-datasets has already prepared, without TensorFlow.

Only datasets prepared in the array_record format can be read this way
(``tfds`` random-access data sources decode PNG with PIL, not TensorFlow).
Nothing here downloads or prepares data: a dataset that is not prepared is
reported as unavailable. ``tensorflow_datasets`` is imported only when the
dataset's directory exists, so the default code paths never import it.
"""

from __future__ import annotations

import os

import numpy as np

from vograd.tasks.datasets.sources import RawData, SourceUnavailable

_CHUNK = 4096  # records decoded per __getitems__ call


def default_data_dir() -> str:
    """Returns tfds's default data directory: ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``."""
    return os.environ.get("TFDS_DATA_DIR") or os.path.join(
        os.path.expanduser("~"), "tensorflow_datasets"
    )


def read_tfds(tfds_name: str, split: str, data_dir: str | None = None) -> RawData:
    """Returns all examples of ``split`` of a prepared tfds dataset as ``RawData``.

    Args:
        tfds_name: tfds name, with config if any (``"imagenet_resized/32x32"``).
        split: tfds split name (``"train"``, ``"test"``, ``"validation"``).
        data_dir: tfds data directory; ``None`` means tfds's default.

    Raises:
        SourceUnavailable: tfds is missing, the dataset is not prepared in
            ``data_dir``, or it is not stored as array_record.
    """
    data_dir = os.path.expanduser(data_dir) if data_dir else default_data_dir()
    # Check the directory first: importing tfds costs ~0.5 s.
    if not os.path.isdir(os.path.join(data_dir, tfds_name)):
        raise SourceUnavailable(f"tfds dataset {tfds_name!r} is not prepared in {data_dir}")
    try:
        import tensorflow_datasets as tfds
    except ImportError as e:
        raise SourceUnavailable(
            f"tensorflow-datasets is not installed (pip install 'vograd[tfds]'): {e}"
        ) from e
    try:
        return _read_prepared(tfds, tfds_name, split, data_dir)
    except SourceUnavailable:
        raise
    except tfds.core.registered.DatasetNotFoundError as e:
        raise SourceUnavailable(f"tfds does not know the dataset {tfds_name!r}") from e
    except Exception as e:  # a damaged directory: tfds raises ParseError, JSON, OS, ... errors
        raise SourceUnavailable(
            f"tfds dataset {tfds_name!r} in {os.path.join(data_dir, tfds_name)} is present "
            f"but unreadable ({type(e).__name__}: {e})"
        ) from e


def _read_prepared(tfds, tfds_name: str, split: str, data_dir: str) -> RawData:
    """Returns `read_tfds`'s data once tensorflow-datasets is imported."""
    builder = tfds.builder(tfds_name, data_dir=data_dir)
    if not builder.is_prepared():
        raise SourceUnavailable(
            f"tfds dataset {tfds_name!r} version {builder.version} is not prepared in "
            f"{builder.data_dir}"
        )
    if split not in builder.info.splits:
        raise SourceUnavailable(
            f"tfds dataset {tfds_name!r} has no split {split!r} "
            f"(it has {sorted(builder.info.splits)})"
        )
    try:
        source = builder.as_data_source(split=split)
    except (NotImplementedError, ValueError) as e:
        raise SourceUnavailable(
            f"tfds dataset {tfds_name!r} in {builder.data_dir} cannot be read without "
            f"TensorFlow (prepare it with file_format='array_record'): {e}"
        ) from e
    features = builder.info.features
    if "image" not in features or "label" not in features:
        raise SourceUnavailable(f"tfds dataset {tfds_name!r} has no 'image' and 'label' features")
    num_classes = int(features["label"].num_classes)
    if None in features["image"].shape:
        raise SourceUnavailable(
            f"tfds dataset {tfds_name!r} has images of variable shape {features['image'].shape}"
        )

    n = len(source)
    images = np.empty((n, *features["image"].shape), dtype=np.uint8)
    labels = np.empty((n,), dtype=np.int32)
    for start in range(0, n, _CHUNK):
        records = source.__getitems__(list(range(start, min(start + _CHUNK, n))))
        for i, record in enumerate(records, start):
            images[i] = record["image"]
            labels[i] = record["label"]
    return RawData(
        images=images,
        labels=labels,
        num_classes=num_classes,
        source=f"tensorflow-datasets {tfds_name!r} v{builder.version} from {builder.data_dir}",
    )
