"""Training SeqResNets with the paper's recipe (paper 4.2), resumable after any kill.

One :class:`TrainConfig` says everything about a run; :func:`train` runs it. The recipe
(paper 4.2): SGD with Nesterov momentum 0.9, weight decay 1e-4, initial lr 0.1; CIFAR batch
64 for 300 epochs with lr / 10 at 50% and 75% of the epochs (150 and 225); ImageNet batch 256
for 100 epochs with lr / 10 every 30 epochs. ``recipe="short"`` is a CIFAR run meant to fit a
free Colab session (projected, not measured; :func:`recipe_for` says what it changes and why);
``recipe="quick"`` keeps the optimiser and uses a short cosine schedule.

A run folder ``out`` holds ``config.json`` (the resolved :class:`TrainConfig`, written at the
start) and, after every epoch, ``last.pt``, ``best.pt`` when the test (or validation) error
is a new best, and one row of ``metrics.csv``. Checkpoints hold the model, optimiser,
scheduler, AMP scaler, every RNG state and the metrics so far, so ``resume=True`` continues
where the last completed epoch ended. The order of the training images is a function of
(seed, epoch), and every random crop and flip of (seed, epoch, image), never of a worker
process's RNG, so a resumed epoch sees the batches the uninterrupted run saw. What "exactly"
means depends on the device:

* CPU: bit for bit. A run killed and resumed ends with the same weights as one that was not
  (tested, with and without worker processes, on the digits and on CIFAR-format data).
* GPU with ``deterministic=True`` (``--deterministic``): the same guarantee, at some cost in
  speed (cuDNN's deterministic algorithms, no autotuning, deterministic cuBLAS workspaces).
* GPU without it: the data, dropout masks and all states are resumed exactly, but cuDNN picks
  nondeterministic algorithms (among them the backward of the per-sample grouped convolution
  of the dropout path), so two runs - resumed or not - differ in the last bits and drift apart
  slowly; the final errors agree statistically, not bitwise.

Before the first epoch, ``time_steps`` warm training steps are timed (and undone) and the
projected time per epoch and for the run is printed and written to ``out/projection.json``.
Mixed precision: ``amp="auto"`` is bf16 on GPUs with bfloat16 tensor cores, fp16 with a loss
scaler (its state is in the checkpoint) on older ones, float32 on CPUs; float32 matrix
products and convolutions on CUDA both use TF32.

One module per concern, in the order a run uses them: :mod:`~seqlite.train.config` (the
options), :mod:`~seqlite.train.recipe`, :mod:`~seqlite.train.devices` (processes, AMP,
determinism), :mod:`~seqlite.train.loaders`, :mod:`~seqlite.train.setup` (the parts of a run),
:mod:`~seqlite.train.run_folder` (its files), :mod:`~seqlite.train.resume`,
:mod:`~seqlite.train.projection`, :mod:`~seqlite.train.loop` (train -> run -> epoch -> step),
:mod:`~seqlite.train.evaluate`; :mod:`~seqlite.train.callbacks` hooks into a run.
"""

from .callbacks import Callback
from .config import TrainConfig
from .devices import resolve_device
from .errors import ConfigError, NonFiniteLossError, OutputError
from .evaluate import evaluate, evaluate_checkpoint
from .loop import TrainResult, project_time, train
from .projection import Projection
from .recipe import RECIPES, Recipe, build_optimizer, build_scheduler, recipe_for
from .run_folder import METRICS_COLUMNS, RunFolder, read_metrics, run_files

__all__ = [
    "METRICS_COLUMNS",
    "RECIPES",
    "Callback",
    "ConfigError",
    "NonFiniteLossError",
    "OutputError",
    "Projection",
    "Recipe",
    "RunFolder",
    "TrainConfig",
    "TrainResult",
    "build_optimizer",
    "build_scheduler",
    "evaluate",
    "evaluate_checkpoint",
    "project_time",
    "read_metrics",
    "recipe_for",
    "resolve_device",
    "run_files",
    "train",
]
