"""seqlite._compat: what seqlite does differently on older torch releases, checked on any torch.

The floors themselves run the whole library suite in CI (``.ci/floors``); these tests force each
switch both ways so the code of the branch not taken by this torch is exercised too.
"""

from __future__ import annotations

import warnings

import pytest
import torch

from seqlite import _compat, recompute
from seqlite.seqresnet import seqresnet_cifar


def test_release_of_a_version_string():
    assert _compat._release("2.9.1+cu128") == (2, 9, 1)
    assert _compat._release("2.10.0a0+git1234") == (2, 10, 0)
    assert _compat._release("2.4.1") == (2, 4, 1)
    assert _compat._release(torch.__version__) == _compat.TORCH_VERSION


@pytest.mark.parametrize("keeps", [True, False])
def test_compiled_blocks_are_checkpointed_only_where_torch_keeps_batchnorm_statistics(monkeypatch, keeps):
    monkeypatch.setattr(recompute, "COMPILED_CHECKPOINT_KEEPS_BATCHNORM", keeps)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)  # the branch a traced forward takes
    calls = []

    def spy(fn, *args, **kwargs):
        calls.append(kwargs)
        return fn(*args)

    monkeypatch.setattr(recompute, "checkpoint", spy)
    torch.manual_seed(0)
    model = seqresnet_cifar(k=4, r=1, n=1, num_classes=3, drop_rate=0.0).train()
    model.set_grad_checkpointing()
    model(torch.randn(2, 3, 8, 8)).sum().backward()
    regions = 1 + sum(len(stage) for stage in model.stages)  # stem + first SeqConv, then one per block
    assert len(calls) == (regions if keeps else 0)
    assert int(model.seqconv1.transforms[0].bn.num_batches_tracked) == 1


@pytest.mark.parametrize("keeps", [True, False])
def test_compile_warns_when_it_will_not_checkpoint(monkeypatch, keeps):
    monkeypatch.setattr(_compat, "COMPILED_CHECKPOINT_KEEPS_BATCHNORM", keeps)
    model = seqresnet_cifar(k=4, r=1, n=1, num_classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _compat.warn_if_compile_skips_checkpointing(model)  # no checkpointing asked for: nothing to say
    model.set_grad_checkpointing()
    if keeps:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            _compat.warn_if_compile_skips_checkpointing(model)
    else:
        with pytest.warns(UserWarning, match=r"without gradient checkpointing .* torch >= 2\.9"):
            _compat.warn_if_compile_skips_checkpointing(model)
