"""The course's widgets as a student meets them: notebooks 02, 03, 03b and 08 run in JupyterLab in Chromium.

Each test opens the notebook, clears its stored outputs, runs all cells from the Run menu, checks that no
cell shows an error, then moves the panel's controls through the page (keyboard on a focused slider
handle, a mouse drag, a choice in a dropdown, a click on a toggle button) and checks that the count text
and the figure's PNG bytes both change each time. A screenshot of the panel after the interaction is
saved into the artifacts directory (see ``conftest.py`` for how to run and where they go).

The panels come from :mod:`seqlite.widgets`: a ``VBox`` with CSS classes ``seqlite-panel`` and
``seqlite-<name>``, controls found by their ``description``, an ``HTML`` with class ``seqlite-counts`` and
an ``Image`` with class ``seqlite-figure``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # only for annotations: importing a conftest by name is fragile in a multi-conftest run
    from conftest import NotebookPage

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]


def course_notebook(number: str) -> str:
    """Path, relative to the served root, of ``notebooks/<number>_*.ipynb``."""
    found = sorted((REPO / "notebooks").glob(f"{number}_*.ipynb"))
    assert found, f"course notebook {number} (notebooks/{number}_*.ipynb) is missing"
    return f"notebooks/{found[0].name}"


def run_without_errors(notebook: NotebookPage) -> None:
    state = notebook.run_all()
    errors = notebook.visible_errors()
    assert not errors, f"{notebook.relpath}: cells show errors after Run All: {errors}"
    assert state["pending"] == 0, f"{notebook.relpath}: {state['pending']} of {state['total']} cells did not run"


@dataclass
class PanelInPage:
    """A :mod:`seqlite.widgets` panel rendered in the notebook: its controls, count text and figure."""

    notebook: NotebookPage
    root: Any

    @classmethod
    def find(cls, notebook: NotebookPage, name: str) -> PanelInPage:
        """The panel with class ``seqlite-<name>``, once it shows its count text and figure."""
        panel = cls(notebook, notebook.widget(f"seqlite-{name}"))
        notebook.wait_until(lambda: all(panel.shown()), f"the {name} to show its text and figure")
        return panel

    @property
    def counts(self) -> Any:
        return self.root.locator(".seqlite-counts")

    @property
    def figure(self) -> Any:
        return self.root.locator("img.seqlite-figure")

    def control(self, kind: str, description: str) -> Any:
        """The ``kind`` widget (``widget-slider``, ``widget-dropdown``, ...) labelled ``description``."""
        label = self.notebook.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$"))
        found = self.root.locator(f".{kind}").filter(has=label)
        assert found.count() == 1, f"expected one {kind} labelled {description!r}, found {found.count()}"
        return found.first

    def shown(self) -> tuple[str, str | None]:
        """What the student sees change: the count text and the figure's bytes."""
        return self.counts.inner_text().strip(), self.notebook.image_digest(self.figure)

    def expect_redraw(
        self, before: tuple[str, str | None], after_what: str, text_changes: bool = True, mention: str = ""
    ) -> None:
        """Both the count text (unless ``text_changes`` is False) and the figure bytes must change, and the
        new text must mention ``mention`` (the new setting, e.g. ``g=5``), so it describes what was chosen."""
        text, digest = before
        assert text and digest, f"the panel shows no count text or no figure before {after_what}"
        if text_changes:
            text = self.notebook.wait_text_change(self.counts, text, f"the count text after {after_what}")
        assert mention in text, f"after {after_what} the count text does not mention {mention!r}: {text!r}"
        self.notebook.wait_image_change(self.figure, digest, f"the figure after {after_what}")

    def step_slider(self, description: str, mention: str) -> None:
        """One key press on the focused slider handle (right, or left at the maximum); the count text must
        then mention ``mention.format(new value)``."""
        slider = self.control("widget-slider", description)
        handle = slider.locator(".noUi-handle").first
        value = int(self.notebook.slider_value(slider))
        at_max = value >= int(float(handle.get_attribute("aria-valuemax")))
        key, expected = ("ArrowLeft", value - 1) if at_max else ("ArrowRight", value + 1)
        before = self.shown()
        moved = self.notebook.press_slider(slider, key)
        assert moved == str(expected), f"{description!r}: {key} moved the slider from {value} to {moved}"
        self.expect_redraw(
            before, f"pressing {key} on {description!r} ({value} -> {expected})", mention=mention.format(expected)
        )

    def drag_slider(self, description: str, pixels: float, mention: str) -> None:
        """Drag the slider's handle sideways with the mouse, as a student would."""
        slider = self.control("widget-slider", description)
        value = int(self.notebook.slider_value(slider))
        before = self.shown()
        box = slider.locator(".noUi-handle").first.bounding_box()
        assert box is not None, f"{description!r}: the slider handle is not visible"
        mouse = self.notebook.page.mouse
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        mouse.move(x, y)
        mouse.down()
        mouse.move(x + pixels, y, steps=8)
        mouse.up()
        moved = int(self.notebook.slider_value(slider))
        assert (moved - value) * pixels > 0, f"{description!r}: dragging by {pixels}px left it at {moved}"
        self.expect_redraw(before, f"dragging {description!r} ({value} -> {moved})", mention=mention.format(moved))

    def choose(self, description: str) -> str:
        """Pick, in the dropdown labelled ``description``, the last option other than the current one; the
        count text must then name it."""
        select = self.control("widget-dropdown", description).locator("select")
        current = select.evaluate("s => s.options[s.selectedIndex].label")
        labels = [label for label in select.locator("option").all_inner_texts() if label != current]
        assert labels, f"{description!r}: the dropdown offers nothing but {current!r}"
        before = self.shown()
        select.select_option(label=labels[-1])
        self.expect_redraw(before, f"choosing {labels[-1]!r} in {description!r} (was {current!r})", mention=labels[-1])
        return labels[-1]

    def toggle(self, description: str, button: str, text_changes: bool) -> None:
        buttons = self.control("widget-toggle-buttons", description)
        before = self.shown()
        buttons.locator(".widget-toggle-button", has_text=button).click()
        self.expect_redraw(before, f"clicking {button!r} in {description!r}", text_changes=text_changes)


def test_02_seqconv_widget_redraws_for_g_and_k(open_notebook: Any, artifacts: Path) -> None:
    notebook = open_notebook(course_notebook("02"))
    run_without_errors(notebook)
    panel = PanelInPage.find(notebook, "seqconv-panel")
    panel.step_slider("groups g", mention="g={}")
    panel.step_slider("channels per group k", mention="k={}")
    panel.drag_slider("channels per group k", 40, mention="k={}")
    notebook.screenshot(artifacts / "02-seqconv-panel.png", around=panel.root)
    assert not notebook.visible_errors()


def test_03_window_widget_redraws_mask_and_growth(open_notebook: Any, artifacts: Path) -> None:
    notebook = open_notebook(course_notebook("03"))
    run_without_errors(notebook)
    panel = PanelInPage.find(notebook, "window-panel")
    panel.step_slider("groups g", mention="g={}")
    panel.step_slider("channels per group k", mention="k={}")
    panel.step_slider("window w (channels)", mention="w={}")
    notebook.screenshot(artifacts / "03-window-panel.png", around=panel.root)
    assert not notebook.visible_errors()


def test_03b_depths_widget_reruns_the_layer_and_redraws_the_fields(open_notebook: Any, artifacts: Path) -> None:
    # Each move builds and runs a new layer: the table of measured radii and the field maps must follow.
    notebook = open_notebook(course_notebook("03b"))
    run_without_errors(notebook)
    panel = PanelInPage.find(notebook, "depths-panel")
    panel.step_slider("groups g", mention="g={}")
    panel.step_slider("channels per group k", mention="k={}")
    panel.choose("window")
    notebook.screenshot(artifacts / "03b-depths-panel.png", around=panel.root)
    assert not notebook.visible_errors()


def test_08_layer_picker_redraws_heatmap(open_notebook: Any, artifacts: Path) -> None:
    notebook = open_notebook(course_notebook("08"))
    run_without_errors(notebook)
    panel = PanelInPage.find(notebook, "layer-picker")
    panel.choose("SeqConv layer")
    # Normalising changes the colours only: the count text (the layer's statistics) rightly stays.
    panel.toggle("normalise by", "row max", text_changes=False)
    notebook.screenshot(artifacts / "08-layer-picker.png", around=panel.root)
    assert not notebook.visible_errors()
