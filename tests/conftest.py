"""Shared fixtures of the library tests.

``layer_config``: a test taking this argument runs once per entry of :data:`LAYER_CONFIGS`,
every kind of view the fast path plans for, as a :class:`~seqlite.SeqConvSpec`.
``randomised``: gives random weights and BN statistics to a module, so nothing matches by accident.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from seqlite import SeqConvSpec

# (in, out, k, window, bottleneck, subgroups)
LAYER_CONFIGS = [
    SeqConvSpec(16, 32, 8, 16, False, 1),  # WSeqConv: window = in
    SeqConvSpec(16, 32, 4, 16, False, 1),  # WSeqConv with 8 groups: several blocks of groups
    SeqConvSpec(16, 16, 8, 16, False, 1),  # the residual block's C -> C
    SeqConvSpec(8, 24, 4, None, False, 1),  # dense
    SeqConvSpec(8, 40, 4, None, False, 1),  # dense, 10 groups
    SeqConvSpec(12, 12, 4, 5, False, 1),  # window not a multiple of k, smaller than in
    SeqConvSpec(6, 24, 4, 14, False, 1),  # window wider than in, narrower than the dense view
    SeqConvSpec(6, 18, 6, 100, False, 1),  # window larger than any view: dense
    SeqConvSpec(4, 8, 8, 4, False, 1),  # fewer input channels than k
    SeqConvSpec(16, 32, 8, 16, True, 1),  # WSeqConv-B
    SeqConvSpec(8, 48, 4, None, True, 2),  # dense SeqConv-B with subgroups
    SeqConvSpec(10, 20, 4, 7, True, 4),
]


def _config_id(spec: SeqConvSpec) -> str:
    window = "dense" if spec.window is None else f"w{spec.window}"
    kind = f"-B-c{spec.subgroups}" if spec.bottleneck else ""
    return f"{spec.in_channels}-{spec.out_channels}-k{spec.k}-{window}{kind}"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "layer_config" in metafunc.fixturenames:
        metafunc.parametrize("layer_config", LAYER_CONFIGS, ids=_config_id)


def _randomised(module: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in module.parameters():
            p.normal_()
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.normal_()
            elif name.endswith("running_var"):
                b.uniform_(0.5, 2.0)
    return module


@pytest.fixture(scope="session")  # a pure function: session scope keeps hypothesis's health check quiet
def randomised():
    """``randomised(module)``: random weights and BN statistics (in place); returns the module."""
    return _randomised


def _displayed(obj: object) -> list[dict]:
    """What ``IPython.display.display(obj)`` publishes, as a notebook front end would receive it."""
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.enabled = False  # no history database under the user's home
    InteractiveShell.instance(config=config)  # display() only publishes inside a shell
    with capture_output() as captured:
        display(obj)
    return [output.data for output in captured.outputs]


def _check_panel_structure(panel, css: str) -> None:
    """A seqlite panel is a VBox widget with findable controls, a counts text and a PNG, shown through display."""
    import ipywidgets
    import matplotlib.pyplot as plt

    assert isinstance(panel, ipywidgets.VBox)
    classes = panel._dom_classes
    assert "seqlite-panel" in classes and css in classes
    assert bytes(panel.image.value).startswith(b"\x89PNG\r\n\x1a\n")
    for control in panel.controls.values():
        assert control.description, "controls must be findable by their description"
    assert panel.text in panel.children and panel.image in panel.children
    (shown,) = _displayed(panel)
    assert shown["text/plain"] == repr(panel) and "PNG" not in shown["text/plain"]
    assert shown["application/vnd.jupyter.widget-view+json"]["model_id"] == panel.model_id
    assert not plt.get_fignums(), "rendered figures must be closed"


@pytest.fixture
def check_panel_structure():
    """The structure and display check every widget panel passes (ipywidgets 7 and 8 alike)."""
    return _check_panel_structure


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models gain nothing from more threads, and lose a lot on a busy 2-core machine.

    Modules that train use it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _lr_per_epoch(cfg) -> tuple[torch.optim.Optimizer, list[float]]:
    from seqlite.train import build_optimizer, build_scheduler

    optimizer = build_optimizer(nn.Linear(2, 2), cfg)
    scheduler = build_scheduler(optimizer, cfg)
    lrs = []
    for _ in range(cfg.epochs):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return optimizer, lrs


@pytest.fixture
def lr_per_epoch():
    """``lr_per_epoch(cfg) -> (optimizer, lrs)``: the learning rate of each epoch of a resolved config."""
    return _lr_per_epoch


@pytest.fixture
def registered_model():
    """``registered_model(builder, name)``: ``builder`` registered as ``name`` for this test only; returns ``name``.

    A run builds it through the registry like any model (``--model NAME``): the seam through which
    tests give a run a model that misbehaves on cue.
    """
    from seqlite.registry import register_model, unregister_model

    names = []

    def register(builder, name: str) -> str:
        register_model(builder, name=name)
        names.append(name)
        return name

    yield register
    for name in names:
        unregister_model(name)
