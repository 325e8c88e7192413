"""ImageNet as an ImageFolder tree, with the augmentation the paper adopts (paper 4.2)."""

from __future__ import annotations

import os
from pathlib import Path

from .constants import IMAGENET_MEAN, IMAGENET_STD
from .errors import CorruptDataError, DatasetNotFoundError

__all__ = ["imagenet_datasets", "imagenet_transforms"]


def imagenet_transforms(augment: bool = True):
    """The standard ImageNet augmentation the paper adopts (paper 4.2, after fb.resnet.torch).

    Training: random-resized crop 224 (scale augmentation), colour jitter (brightness,
    contrast and saturation 0.4), AlexNet's PCA lighting noise (std 0.1, :class:`Lighting`),
    horizontal flip, normalisation. Evaluation: resize 256, centre crop 224, normalisation.
    """
    from torchvision import transforms as T

    from .augment import Lighting

    normalise = T.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    evaluation = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), normalise])
    if not augment:
        return evaluation, evaluation
    train = T.Compose([
        T.RandomResizedCrop(224),
        T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
        T.ToTensor(),
        Lighting(0.1),  # on [0, 1] pixels, before normalisation
        T.RandomHorizontalFlip(),
        normalise,
    ])
    return train, evaluation


def _load_image(path: str):
    """torchvision's image loader, with an unreadable file named in the error (training stops there)."""
    from PIL import Image
    from torchvision.datasets.folder import default_loader

    try:
        return default_loader(path)
    except (OSError, Image.DecompressionBombError, SyntaxError, ValueError) as err:
        raise CorruptDataError(f"cannot read the image {path}: {err}") from None


def imagenet_datasets(data_dir: str | os.PathLike, *, augment: bool = True):
    """ImageNet (train, val) as torchvision ImageFolders under ``data_dir/train`` and ``data_dir/val``."""
    from torchvision.datasets import ImageFolder

    root = Path(data_dir).expanduser()
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir() or not any(p.is_dir() for p in folder.iterdir()):
            raise DatasetNotFoundError(
                f"ImageNet not found: looked for class folders in {folder}. ImageNet cannot be downloaded "
                f"automatically; get ILSVRC2012 from https://image-net.org (registration needed) and arrange it "
                f"as {root}/train/<class>/*.JPEG and {root}/val/<class>/*.JPEG (the validation images sorted "
                f"into class folders), then pass --data-dir {root}."
            )
    train_tf, eval_tf = imagenet_transforms(augment)
    train = ImageFolder(root / "train", transform=train_tf, loader=_load_image)
    val = ImageFolder(root / "val", transform=eval_tf, loader=_load_image)
    if train.classes != val.classes:
        raise ValueError(
            f"ImageNet train and val class folders differ under {root}: "
            f"{len(train.classes)} train classes, {len(val.classes)} val classes"
        )
    return train, val
