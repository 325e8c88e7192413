"""The kernel nbval starts for the notebooks sees the thread count and CPU capability the tests set.

CI runs the notebooks a second time as on another machine (``.ci/variations``): another thread count
(``OMP_NUM_THREADS``) and another CPU capability (``ATEN_CPU_CAPABILITY``), both read by torch when it
starts. That proves something only if the notebooks' kernel, a separate process that nbval starts
(``--nbval-current-env``), gets them: this test starts that kernel the way nbval does and compares what
torch sees there with what it sees in a fresh interpreter of this environment, and with the variables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

PROBE = (
    "import json, os, torch; print(json.dumps({'threads': torch.get_num_threads(), "
    "'capability': torch.backends.cpu.get_cpu_capability(), "
    "'variables': {k: os.environ.get(k) for k in ('OMP_NUM_THREADS', 'ATEN_CPU_CAPABILITY')}}))"
)


def _in_nbvals_kernel(code: str) -> str:
    from nbval.kernel import CURRENT_ENV_KERNEL_NAME, start_new_kernel

    manager, client = start_new_kernel(kernel_name=CURRENT_ENV_KERNEL_NAME, stderr=subprocess.DEVNULL)
    printed = []

    def hook(message):
        if message["msg_type"] == "stream":
            printed.append(message["content"]["text"])
        elif message["msg_type"] == "error":
            printed.append("\n".join(message["content"]["traceback"]))

    try:
        client.execute_interactive(code, output_hook=hook, timeout=120)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return "".join(printed)


@pytest.mark.slow
def test_the_notebooks_kernel_sees_the_threads_and_cpu_capability_of_the_tests():
    pytest.importorskip("nbval")
    kernel = json.loads(_in_nbvals_kernel(PROBE))
    fresh = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True).stdout)
    assert kernel == fresh
    assert kernel["variables"] == {k: os.environ.get(k) for k in kernel["variables"]}
    threads = os.environ.get("OMP_NUM_THREADS")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if threads and int(threads) <= cores:  # torch starts with at most one thread per core
        assert kernel["threads"] == int(threads)
    if os.environ.get("ATEN_CPU_CAPABILITY"):
        assert kernel["capability"] == os.environ["ATEN_CPU_CAPABILITY"].upper()
