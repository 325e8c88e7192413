"""Speed and memory benchmarks of the SeqConv fast path.

Run them as modules from the repository root, for example ``python -m benchmarks.layers``,
``python -m benchmarks.train_step`` and ``python -m benchmarks.memory``; each prints a table
and the machine it ran on. Results are recorded in ``benchmarks/RESULTS.md``.
"""
