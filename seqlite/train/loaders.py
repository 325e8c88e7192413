"""The data of a run: its datasets and the loaders that feed them, in an order set by (seed, epoch) alone.

The order of the training images is drawn by ``DistributedSampler`` from a generator it seeds
with (run seed, epoch) each time an epoch is iterated (one process is its ``num_replicas=1``
case), and every random crop and flip from (seed, epoch, image), never from a worker process's
RNG. So an epoch sees the same batches however often its loader is iterated, whatever the
number of loader workers, and whether the run was resumed or not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, Subset

from ..data import DataSpec, build_datasets
from ..data.augment import EpochIndexSampler, SeededAugmentation
from ..data.device import DeviceCIFARLoader
from .devices import Process
from .errors import ConfigError

__all__ = ["Loaders", "build_data", "build_loaders", "make_loader", "order_seed", "to_device"]


def order_seed(seed: int) -> int:
    """The seed of the data order of a run seeded ``seed`` (the sampler adds the epoch).

    Spread out, so that runs of seeds 0, 1, 2... do not see each other's orders one epoch apart.
    """
    return seed * 100_003


def build_data(cfg: Any, proc: Process) -> DataSpec:
    """The training and test sets of ``cfg``; only rank 0 downloads, the others wait and read the files."""

    def datasets(download: bool) -> DataSpec:
        try:
            return build_datasets(cfg.dataset, cfg.data_dir, download=download, holdout=cfg.holdout,
                                  verify_checksums=cfg.verify_data)
        except ValueError as err:
            if str(err).startswith("holdout"):  # more than the dataset's training images
                raise ConfigError("holdout", str(err)) from None
            raise

    spec = datasets(cfg.download) if proc.main else None
    if proc.world_size > 1:
        dist.barrier()
    if not proc.main:
        spec = datasets(False)
    if cfg.subset is not None and cfg.subset < len(spec.train):
        chosen = torch.randperm(len(spec.train), generator=torch.Generator().manual_seed(cfg.seed))[: cfg.subset]
        spec.train = Subset(spec.train, chosen.sort().values.tolist())
    return spec


@dataclass
class Loaders:
    """The training and test batches of a run; ``set_epoch`` before every epoch."""

    train: DataLoader | DeviceCIFARLoader
    test: DataLoader | DeviceCIFARLoader
    sampler: EpochIndexSampler | DeviceCIFARLoader

    def set_epoch(self, epoch: int) -> None:
        """The order, crops and flips of ``epoch``: the same whenever and however often it is iterated."""
        self.sampler.set_epoch(epoch)


def make_loader(dataset: Dataset, batch_size: int, workers: int, device: torch.device, sampler: Sampler | None = None,
                persistent: bool = False) -> DataLoader:
    """A ``DataLoader`` of ``dataset`` for ``device`` (pinned memory on CUDA) with ``workers`` processes."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=device.type == "cuda",  # pinned memory only helps (and only exists) with CUDA
        persistent_workers=persistent and workers > 0,
        # Worker base seeds come from here, not from the global generator, which dropout draws from.
        generator=torch.Generator(),
    )


def build_loaders(spec: DataSpec, cfg: Any, proc: Process, device: torch.device) -> Loaders:
    """Each process shuffles its own share of ``spec``; the order depends only on (seed, epoch)."""
    sampler = DistributedSampler(spec.train, proc.world_size, proc.rank, shuffle=True, seed=order_seed(cfg.seed))
    test_set = spec.test
    if proc.world_size > 1:
        test_set = Subset(spec.test, range(proc.rank, len(spec.test), proc.world_size))
    per_process_batch = cfg.batch_size // proc.world_size
    if cfg.gpu_data:
        train_loader = DeviceCIFARLoader(spec.train, per_process_batch, device, sampler=sampler, seed=cfg.seed,
                                         rank=proc.rank)
        test_loader = DeviceCIFARLoader(test_set, max(per_process_batch, 256), device)
        return Loaders(train_loader, test_loader, train_loader)
    # Random transforms draw from (seed, epoch, sample), not from a worker's RNG: a resumed epoch
    # repeats the crops and flips of the uninterrupted run, whatever the workers.
    indexed = EpochIndexSampler(sampler)
    train_loader = make_loader(SeededAugmentation(spec.train, cfg.seed), per_process_batch, cfg.workers, device,
                               indexed, persistent=True)
    # Test workers would sit idle through every training epoch, holding CPUs (Colab has 2): not persistent.
    test_loader = make_loader(test_set, max(per_process_batch, 256), cfg.workers, device)
    return Loaders(train_loader, test_loader, indexed)


def to_device(images: torch.Tensor, targets: torch.Tensor, device: torch.device, channels_last: bool):
    """A batch on ``device`` (asynchronously from pinned memory on CUDA), images in the run's memory format."""
    non_blocking = device.type == "cuda"
    images = images.to(device, non_blocking=non_blocking)
    if channels_last:
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets.to(device, non_blocking=non_blocking)
