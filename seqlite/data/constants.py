"""Per-channel statistics of the datasets, in one place (as timm's ``data/constants.py``).

The training pipelines normalise with them (:mod:`seqlite.data.cifar`, :mod:`seqlite.data.imagenet`)
and the models describe their expected input with them (``pretrained_cfg`` in
:mod:`seqlite.seqresnet`). Pixels in [0, 1], RGB order.
"""

from __future__ import annotations

__all__ = [
    "CIFAR100_MEAN",
    "CIFAR100_STD",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "IMAGENET_EIGVAL",
    "IMAGENET_EIGVEC",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)  # CIFAR-10
CIFAR_STD = (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN = (0.5071, 0.4865, 0.4409)
CIFAR100_STD = (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Eigenvalues and eigenvectors (columns) of the covariance of ImageNet's RGB pixels in [0, 1],
# as AlexNet and fb.resnet.torch use them for PCA lighting noise (seqlite.data.augment.Lighting).
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)
