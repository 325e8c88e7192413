"""Self-test of the browser harness on a notebook generated here, independent of the course notebooks.

It checks that the harness can fail: a cell that raises is reported, and a widget panel built like the
course's (slider + HTML count + PNG ``Image``) is seen to redraw when its slider moves by keyboard.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PANEL_SOURCE = """
import io
import ipywidgets as w
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt

def png(n):
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow([[(i * j) % (n + 1) for j in range(n)] for i in range(n)])
    buf = io.BytesIO(); fig.savefig(buf, format="png"); plt.close(fig)
    return buf.getvalue()

size = w.IntSlider(value=3, min=1, max=9, description="size n", continuous_update=False)
size.add_class("harness-size")
count = w.HTML(); image = w.Image(format="png")
def redraw(_=None):
    count.value = f"<b>{size.value ** 2}</b> cells"
    image.value = png(size.value)
size.observe(redraw, names="value"); redraw()
panel = w.VBox([size, count, image]); panel.add_class("harness-panel")
panel
"""


def notebook_json(*sources: str) -> str:
    cells = [
        {"cell_type": "code", "metadata": {}, "source": s, "outputs": [], "execution_count": None} for s in sources
    ]
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return json.dumps({"cells": cells, "metadata": {"kernelspec": kernelspec}, "nbformat": 4, "nbformat_minor": 5})


def write_notebook(root: Path, name: str, *sources: str) -> str:
    path = root / "harness" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(notebook_json(*sources))
    return f"harness/{name}"


def test_harness_sees_widget_redraw_and_errors(open_notebook, lab_server, artifacts):
    relpath = write_notebook(lab_server.root, "panel.ipynb", "x = 1", PANEL_SOURCE, "raise ValueError('boom')")
    nb = open_notebook(relpath)
    state = nb.run_all()
    assert any("ValueError: boom" in e for e in nb.visible_errors()), state

    slider = nb.widget("harness-size")
    panel = nb.widget("harness-panel")
    count, image = panel.locator(".widget-html"), panel.locator("img.widget-image")
    text_before, image_before = count.inner_text(), nb.image_digest(image)
    assert image_before is not None
    assert nb.press_slider(slider, "ArrowRight", 2) == "5"
    assert nb.wait_text_change(count, text_before, "the count") == "25 cells"
    nb.wait_image_change(image, image_before, "the image")
    nb.screenshot(artifacts / "harness.png", around=panel)
