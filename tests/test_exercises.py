"""seqlite.exercises: checks print what is wrong with a hint, solutions fail loudly, the library is off for answers."""

from __future__ import annotations

import contextlib
import json
import sys
import types
from pathlib import Path

import pytest
import torch

from seqlite.exercises import (
    Check,
    ExerciseError,
    LibraryCallError,
    LibraryGuard,
    check_prediction,
    library_off,
    unanswered,
)
from seqlite.fast import seqconv_forward
from seqlite.layers import HadamardSeqConv2d, SeqConv2d, SeqConvSpec, group_views


def test_unanswered_names_the_missing_answers(capsys):
    assert unanswered(a=None, b=3)
    assert "fill in a" in capsys.readouterr().out
    assert not unanswered(a=1)


def test_a_wrong_answer_prints_expected_got_and_hint(capsys):
    check = Check("groups")
    assert not check.equal(5, 6, "number of groups", "g = out / k")
    assert not check.result("fine")
    out = capsys.readouterr().out
    assert "expected 6, got 5" in out and "hint: g = out / k" in out and "Correct" not in out


def test_strict_raises_and_quiet_success_prints_nothing(capsys):
    bad = Check("x")
    bad.equal(1, 2, "x", "hint")
    with pytest.raises(ExerciseError, match="expected 2, got 1"):
        bad.result("ok", strict=True)
    good = Check("x")
    good.equal(2, 2, "x", "hint")
    assert good.result("ok", strict=True, quiet=True)
    assert capsys.readouterr().out == ""


def test_close_reports_shape_nan_and_value_differences():
    want = torch.tensor([[1.0, float("nan")], [2.0, 3.0]])
    check = Check("t")
    assert check.close(want.clone(), want, "t", "h")
    assert not check.close(torch.zeros(3), want, "t", "h")
    assert not check.close(want.nan_to_num(0.0), want, "t", "h")
    off = want.clone()
    off[1, 1] = 3.5
    assert not check.close(off, want, "t", "h")
    assert [w.split(":")[1].strip().split(" ")[0] for w, _ in check.problems] == ["expected", "NaN", "values"]


def test_call_marks_not_implemented_as_unanswered_and_reports_other_errors(capsys):
    def stub():
        raise NotImplementedError

    check = Check("f")
    assert check.call(stub) == (False, None)
    assert not check.result("ok")
    assert "Not answered yet" in capsys.readouterr().out
    broken = Check("f")
    ok, _ = broken.call(lambda: torch.zeros(2) + torch.zeros(3), what="my_layer")
    assert not ok and "my_layer raised RuntimeError" in broken.problems[0][0]


# --------------------------------------------------------------------------- library_off and Check(rebuilds=...)

# What an Eq. 2 exercise rebuilds: the layer's forward pass and every public shortcut to its numbers or views.
EQ2_REBUILDS = (SeqConv2d, SeqConv2d.views, SeqConvSpec.views, group_views, HadamardSeqConv2d, seqconv_forward)


def honest_eq2(layer, x0):
    """Eq. 2 written with the layer's transforms only (what the notebook 03 exercise asks for)."""
    features = x0
    for transform in layer.transforms:
        stop = features.shape[1]
        features = torch.cat([features, transform(features[:, max(0, stop - layer.window) : stop])], 1)
    return features[:, x0.shape[1] :]


def windowed_layer():
    torch.manual_seed(0)
    return SeqConv2d(12, 24, 4, window=8).eval(), torch.randn(2, 12, 5, 5)


def run_check(answer):
    layer, x0 = windowed_layer()
    check = Check("Eq. 2", rebuilds=EQ2_REBUILDS)
    ok, got = check.call(answer, layer, x0, what="my_windowed_seqconv")
    if ok:
        check.close(got, layer(x0), "output", "hint")  # the reference runs with the library back on
    return check


def test_an_answer_that_calls_the_library_fails_and_an_honest_one_passes(capsys):
    honest = run_check(honest_eq2)
    assert not honest.problems and honest.result("ok")
    assert "Correct: ok" in capsys.readouterr().out
    for cheat in (
        lambda layer, x0: layer(x0),
        lambda layer, x0: layer.forward_residual(x0).activated,
        lambda layer, x0: seqconv_forward(layer.spec, layer.transforms, x0)[1],
        lambda layer, x0: HadamardSeqConv2d.from_windowed(layer)(x0),
        lambda layer, x0: torch.cat([t(x0) for t in layer.transforms[:0]] + [layer(x0)], 1),
    ):
        check = run_check(cheat)
        assert not check.result("ok")
        out = capsys.readouterr().out
        assert "my_windowed_seqconv used the library's" in out and "write that part yourself" in out
        assert "Correct" not in out


def test_the_views_the_exercise_asks_for_are_switched_off_even_when_cached():
    layer, x0 = windowed_layer()
    assert layer.spec.views  # cached on the spec instance before the guard
    for peek in (lambda: layer.views, lambda: layer.spec.views, lambda: group_views(12, 24, 4, 8)):
        with library_off(*EQ2_REBUILDS) as guard, pytest.raises(LibraryCallError, match="views"):
            peek()
        assert guard.calls
    assert layer.spec.views == layer.views  # back on


def test_an_answer_that_catches_the_error_still_fails():
    def sneaky(layer, x0):
        try:
            return layer(x0)
        except Exception:
            return honest_eq2(layer, x0)

    check = run_check(sneaky)
    assert any("used the library's SeqConv2d.forward" in wrong for wrong, _ in check.problems)
    with pytest.raises(ExerciseError, match="SeqConv2d.forward"):
        check.result("ok", strict=True)


def test_a_class_is_off_for_instances_made_before_subclasses_and_aliases():
    layer, x0 = windowed_layer()

    class Mine(SeqConv2d):  # a "rebuild" that is the library's class
        pass

    fake = types.ModuleType("student_namespace")
    fake.views_of = group_views  # `from seqlite.layers import group_views as views_of` in a notebook
    sys.modules[fake.__name__] = fake
    try:
        with library_off(SeqConv2d, group_views) as guard:
            for use in (lambda: layer(x0), lambda: Mine(4, 8, 4), lambda: SeqConv2d(4, 8, 4),
                        lambda: fake.views_of(4, 8, 4)):
                with pytest.raises(LibraryCallError, match="build it yourself"):
                    use()
            assert layer.transforms[0](x0[:, 4:]).shape == (2, 4, 5, 5)  # what the exercise hands over still works
        assert guard.calls == ["SeqConv2d.forward", "SeqConv2d (building one)", "SeqConv2d (building one)",
                               "group_views"]
        assert fake.views_of(4, 8, 4) == [(0, 4), (0, 8)]
    finally:
        del sys.modules[fake.__name__]


def test_everything_is_restored_even_when_the_block_raises():
    before = (dict(vars(SeqConv2d)), dict(vars(SeqConvSpec)), sys.modules["seqlite.layers"].group_views)
    with pytest.raises(RuntimeError, match="boom"), library_off(*EQ2_REBUILDS, (SeqConv2d, "extra_repr")):
        raise RuntimeError("boom")
    assert (dict(vars(SeqConv2d)), dict(vars(SeqConvSpec)), sys.modules["seqlite.layers"].group_views) == before
    layer, x0 = windowed_layer()
    assert layer(x0).shape == (2, 24, 5, 5) and "window=8" in repr(layer)


def test_library_off_refuses_what_it_cannot_switch_off():
    def local():
        pass

    with pytest.raises(ValueError, match="inside a function"), library_off(local):
        pass
    with pytest.raises(ValueError, match="takes classes"), library_off(3):
        pass


def test_unanswered_stays_unanswered_with_the_library_off(capsys):
    def stub(layer, x0):
        raise NotImplementedError

    check = run_check(stub)
    assert check.unanswered and not check.problems


def test_check_prediction_says_right_or_not_and_reminds_an_empty_guess(capsys):
    assert check_prediction(None, 3, "why") is None
    assert "No prediction" in capsys.readouterr().out
    assert check_prediction(0.13, 0.128, "because", tolerance=0.02)
    assert "right. because" in capsys.readouterr().out
    assert not check_prediction([[1, 0], [0, 1]], [[1, 0], [1, 1]], "rows")
    assert "not quite" in capsys.readouterr().out
    assert check_prediction((1, 2), [1, 2], "same numbers")


# --------------------------------------------------------------------------- the notebooks' build exercises

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"

# Per build exercise: the notebook, the cells to run (by id, in order: what the check needs, the exercise
# template, the check cell, the solution cell), the check function, and answers that hand the work to the
# library. Each cheat computes the right numbers (it passes with the library left on), so only the switch
# catches it.
BUILD_EXERCISES = {
    "02 Eq. 1 from scratch": (
        "02_seqconv_layer.ipynb",
        ["p02-library", "p02-build", "p02-build-check", "p02-build-sol"],
        "check_scratch",
        {
            "wraps the library's layer": """
class Cheat(nn.Module):
    def __init__(self, in_channels, out_channels, k):
        super().__init__()
        self.layer = SeqConv2d(in_channels, out_channels, k)

    def forward(self, x0):
        return self.layer(x0)
""",
            "is the library's layer": """
class Cheat(SeqConv2d):
    def __init__(self, in_channels, out_channels, k):
        super().__init__(in_channels, out_channels, k)
""",
            "builds its transforms from the library's F_i": """
from seqlite.layers import GroupTransform

class Cheat(nn.Module):
    def __init__(self, in_channels, out_channels, k):
        super().__init__()
        self.f = nn.ModuleList(GroupTransform(in_channels + i * k, k) for i in range(out_channels // k))

    def forward(self, x0):
        features = [x0]
        for f in self.f:
            features.append(f(torch.cat(features, 1)))
        return torch.cat(features[1:], 1)
""",
        },
    ),
    "03 Eq. 2 by slicing": (
        "03_windowing.ipynb",
        ["p03-build", "p03-build-check", "p03-build-sol"],
        "check_windowed",
        {
            "calls the layer": """
def Cheat(layer, x0):
    return layer(x0)
""",
            "runs the fast kernel": """
from seqlite.fast import seqconv_forward

def Cheat(layer, x0):
    return seqconv_forward(layer.spec, layer.transforms, x0)[1]
""",
            "reads the layer's views": """
def Cheat(layer, x0):
    features = x0
    for transform, (start, stop) in zip(layer.transforms, layer.views):
        features = torch.cat([features, transform(features[:, start:stop])], 1)
    return features[:, x0.shape[1]:]
""",
            "computes the views with seqlite.group_views": """
import seqlite

def Cheat(layer, x0):
    views = seqlite.group_views(layer.in_channels, layer.out_channels, layer.k, layer.window)
    features = x0
    for transform, (start, stop) in zip(layer.transforms, views):
        features = torch.cat([features, transform(features[:, start:stop])], 1)
    return features[:, x0.shape[1]:]
""",
        },
    ),
    "03b path counts by length": (
        "03b_one_layer_many_depths.ipynb",
        ["38c25a9a", "p03b-build", "p03b-build-check", "p03b-build-sol"],
        "check_path_counts",
        {
            "calls path_length_counts": """
def Cheat(in_channels, out_channels, k, window=None):
    return path_length_counts(in_channels, out_channels, k, window)
""",
            "calls it through the seqlite package": """
import seqlite

def Cheat(in_channels, out_channels, k, window=None):
    return seqlite.path_length_counts(in_channels, out_channels, k, window)
""",
            "runs the dynamic programme on group_connectivity": """
from seqlite.analysis import group_connectivity

def Cheat(in_channels, out_channels, k, window=None):
    reads = group_connectivity(in_channels, out_channels, k, window).long()
    g = reads.shape[0]
    paths = torch.zeros(g + 1, g + 1, dtype=torch.int64)
    paths[0, 0] = 1
    for i in range(1, g + 1):
        paths[i, 1:] = (reads[i - 1] @ paths[:g])[:-1]
    return paths[1:]
""",
        },
    ),
    "05 the down-sampling block": (
        "05_downsampling.ipynb",
        ["a1802695", "p05-build", "p05-build-check", "p05-build-sol"],
        "check_downsampling",
        {
            "is the library's block": """
class Cheat(DownsamplingBlock):
    def __init__(self, in_channels, out_channels, k):
        super().__init__(in_channels, out_channels, k)
""",
            "runs the library's forward on its own parts": """
from seqlite.layers import SeqConv2d

class Cheat(nn.Module):
    def __init__(self, in_channels, out_channels, k):
        super().__init__()
        self.extension = SeqConv2d(in_channels, out_channels - in_channels, k, window=in_channels)
        self.downsize = nn.Conv2d(out_channels, out_channels, 3, 2, 1, groups=out_channels // k, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)

    def forward(self, a):
        return DownsamplingBlock.forward(self, a)
""",
        },
    ),
    "06 layer B of the residual block": (
        "06_whole_networks.ipynb",
        ["3ce2d422", "p06-build", "p06-build-check", "p06-build-sol"],
        "check_layer_b",
        {
            "calls forward_residual": """
def Cheat(layer_b, x, s):
    return tuple(layer_b.forward_residual(x, shortcut=s))
""",
            "runs the fast kernel": """
def Cheat(layer_b, x, s):
    return seqconv_forward(layer_b.spec, layer_b.transforms, x, s)
""",
            "borrows the class body's loop": """
def Cheat(layer_b, x, s):
    layer_b.fast = False
    return tuple(SeqConv2d.forward_residual(layer_b, x, s))
""",
        },
    ),
    "07 the paper's recipe in torch": (
        "07_training_on_a_gpu.ipynb",
        ["b06083e9", "3c08030f", "p07-build", "p07-build-check", "p07-build-sol"],
        "check_paper_recipe",
        {
            "calls build_optimizer and build_scheduler": """
def Cheat(model):
    cfg = TrainConfig(dataset="cifar10", recipe="paper")
    optimizer = build_optimizer(model, cfg)
    return optimizer, build_scheduler(optimizer, cfg)
""",
            "reads the numbers from recipe_for": """
def Cheat(model):
    r = recipe_for("paper", "cifar10")
    optimizer = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.momentum, nesterov=r.nesterov,
                                weight_decay=r.weight_decay)
    return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, [r.epochs // 2, r.epochs * 3 // 4], 0.1)
""",
            "resolves a run configuration": """
import seqlite.train

def Cheat(model):
    cfg = seqlite.train.TrainConfig(dataset="cifar10", recipe="paper").resolved()
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    return optimizer, torch.optim.lr_scheduler.MultiStepLR(optimizer, [cfg.epochs // 2, cfg.epochs * 3 // 4], 0.1)
""",
            "builds a Recipe and hands it to the library": """
from seqlite.train.recipe import Recipe

def Cheat(model):
    recipe = Recipe(300, 64, "milestones")
    optimizer = build_optimizer(model, recipe)
    return optimizer, build_scheduler(optimizer, recipe)
""",
        },
    ),
    "08 Fig. 5's weight usage": (
        "08_weight_heatmaps.ipynb",
        ["b1893f3c", "p08-build", "p08-build-check", "p08-build-sol"],
        "check_weight_usage",
        {
            "calls the library's weight_usage": """
def Cheat(layer):
    return weight_usage(layer)
""",
            "reaches it through its module": """
import seqlite.analysis

def Cheat(layer):
    return seqlite.analysis.weight_usage(layer, fold_bn=False)
""",
            "takes the columns from source_groups": """
from seqlite.analysis import source_groups

def Cheat(layer):
    sources = source_groups(layer.in_channels, layer.out_channels, layer.k)
    usage = torch.full((len(layer.transforms), len(sources)), float("nan"))
    for i, (transform, (start, stop)) in enumerate(zip(layer.transforms, layer.views)):
        weight = transform.first_conv.weight.detach()
        for j, (_, lo, hi) in enumerate(sources):
            lo, hi = max(lo, start), min(hi, stop)
            if lo < hi:
                usage[i, j] = weight[:, lo - start:hi - start].abs().mean()
    return usage
""",
        },
    ),
    "09 the plain twin": (
        "09_drop_in_layer.ipynb",
        ["4468a63b", "35064fae", "cc12f637", "p09-build", "p09-build-check", "p09-build-sol"],
        "check_plain_twin",
        {
            "calls plain_twin": """
def Cheat(model):
    return plain_twin(model)
""",
            "builds the library's PlainConv2d": """
import copy
from seqlite import PlainConv2d

def Cheat(model):
    twin = copy.deepcopy(model)
    for i, layer in enumerate(twin):
        if isinstance(layer, SeqConv2d):
            twin[i] = PlainConv2d(layer.in_channels, layer.out_channels)
    return twin
""",
            "replaces each layer with the private helper": """
import copy
from seqlite.twin import _twin_layer

def Cheat(model):
    twin = copy.deepcopy(model)
    for i, layer in enumerate(twin):
        if isinstance(layer, SeqConv2d):
            twin[i] = _twin_layer(layer, False)
    return twin
""",
            "lets the private walker replace them": """
import copy
import seqlite.twin

def Cheat(model):
    twin = copy.deepcopy(model)
    seqlite.twin._replace(twin)
    return twin
""",
        },
    ),
    "10 seqconvify": (
        "10_capstone.ipynb",
        ["c10a0004", "p10-build", "p10-build-check", "p10-build-sol"],
        "check_seqconvify",
        {
            "returns the notebook's ready-made SeqConv network": """
def Cheat(model, k):
    widths = tuple(block.conv2.out_channels for block in model.blocks[::2])
    return resnet18_seq(model.fc.out_features, model.stem.conv.in_channels, widths=widths, k=k)
""",
            "builds the notebook's network class": """
def Cheat(model, k):
    widths = tuple(block.conv2.out_channels for block in model.blocks[::2])
    return ResNet18Style(widths, k, model.fc.out_features, model.stem.conv.in_channels)
""",
            "swaps in the notebook's SeqConv blocks": """
import copy

def Cheat(model, k):
    model = copy.deepcopy(model)
    for i, block in enumerate(model.blocks):
        c_in = block.conv2.in_channels if block.project is None else block.project.in_channels
        stride = 1 if block.project is None else block.project.stride[0]
        model.blocks[i] = BasicBlock(c_in, block.conv2.out_channels, stride, k)
    return model
""",
        },
    ),
}


def notebook_module(notebook: str, cell_ids: list[str]) -> types.ModuleType:
    """Run the cells ``cell_ids`` of ``notebook`` in a fresh module registered in ``sys.modules``, as a kernel's
    namespace is (so the switch finds names the cells imported, as it does in the notebook)."""
    cells = {c.get("id"): "".join(c["source"]) for c in json.loads((NOTEBOOKS / notebook).read_text())["cells"]}
    module = types.ModuleType(f"notebook_{notebook.split('_')[0]}")
    sys.modules[module.__name__] = module
    for cell_id in cell_ids:
        exec(compile(cells[cell_id], f"{notebook}:{cell_id}", "exec"), module.__dict__)
    return module


@pytest.mark.parametrize("name", list(BUILD_EXERCISES))
def test_a_notebook_build_exercise_fails_every_answer_that_calls_the_library(name, capsys, monkeypatch):
    notebook, cell_ids, check_name, cheats = BUILD_EXERCISES[name]
    try:
        nb = notebook_module(notebook, cell_ids)  # the solution cell runs its check with strict=True: it passes
        assert "Not answered yet" in capsys.readouterr().out  # the template, checked as the notebook does
        check = getattr(nb, check_name)
        for what, source in cheats.items():
            exec(source, nb.__dict__)
            with pytest.raises(ExerciseError, match="used the library's"):
                check(nb.Cheat, strict=True, quiet=True)
                pytest.fail(f"an answer that {what} passed {check_name}")
            with monkeypatch.context() as off:  # the same answer with the switch disabled passes: it is a real cheat
                off.setattr("seqlite.exercises.library_off", lambda *targets, **kw: contextlib.nullcontext(
                    LibraryGuard()))
                check(nb.Cheat, strict=True, quiet=True)  # raises ExerciseError if it does not pass
    finally:
        sys.modules.pop(f"notebook_{notebook.split('_')[0]}", None)
