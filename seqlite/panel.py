"""The machinery of the course's panels: a ``VBox`` of controls, a counts text and a figure, and their checks.

:class:`Panel` holds the controls, the counts (:attr:`Panel.text`) and the figure as PNG
(:attr:`Panel.image`) and redraws on every move; the panels themselves are in
:mod:`seqlite.widgets`. Every count a panel is given goes through :func:`count_slider`: a positive
integer, the slider reaching at least the value asked for and at most the panel's bound (a
value beyond it is clamped with a ``UserWarning`` that names the control, the value asked for,
the value used and why), the same way for every panel.
"""

from __future__ import annotations

import html
import warnings
from typing import Any

import ipywidgets as widgets
from traitlets import validate

from . import viz
from .checks import positive_int

__all__ = ["Panel", "WarningSlider", "checked_in_channels", "clamp", "count_slider", "slider", "table"]


def clamp(panel: str, name: str, value: int, low: int, high: int, why: str = "", stacklevel: int = 3) -> int:
    """``value`` clamped to ``low..high``, with a warning saying so when it changes.

    ``stacklevel`` as in :func:`warnings.warn`, counted from the caller of ``clamp``'s caller (a panel's
    ``__init__``), so the warning points at the line that made the panel.
    """
    used = min(max(value, low), high)
    if used != value:
        reason = f" ({why})" if why else ""
        warnings.warn(
            f"{panel}: {name}={value} is outside what the panel offers, {low}..{high}{reason}; using {name}={used}",
            UserWarning,
            stacklevel=stacklevel,
        )
    return used


class WarningSlider(widgets.IntSlider):
    """An ``IntSlider`` that warns when a value set in code is clamped to its range.

    (ipywidgets clamps silently; in a browser the handle cannot leave the range anyway.)
    """

    @validate("value")
    def _validate_value(self, proposal: Any) -> int:
        asked = proposal["value"]
        used = super()._validate_value(proposal)
        if used != asked:
            warnings.warn(
                f"{self.description!r}: {asked} is outside the slider's range {self.min}..{self.max}; using {used}",
                UserWarning,
                stacklevel=2,
            )
        return used


class Panel(widgets.VBox):
    """Controls + count text + figure image in one ``VBox``; subclasses say what to draw.

    The panel is the ``VBox`` itself, so it displays through the public widget API of
    ipywidgets 7 and 8 alike; its text form (``repr``) names the controls' values, never
    the PNG bytes. Subclasses set :attr:`controls` (``name -> widget``) by passing them to
    ``super().__init__`` and implement :meth:`describe` (HTML) and :meth:`draw` (a
    matplotlib figure).
    """

    css_name = "panel"

    def __init__(self, controls: dict[str, widgets.Widget]):
        self.controls = controls
        self._holding = False
        self.text = widgets.HTML(description="", layout=widgets.Layout(width="auto"))
        self.text.add_class("seqlite-counts")
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.image.add_class("seqlite-figure")
        row = widgets.HBox(list(controls.values()), layout=widgets.Layout(flex_flow="row wrap"))
        row.add_class("seqlite-controls")
        super().__init__([row, self.text, self.image])
        self.add_class("seqlite-panel")
        self.add_class(f"seqlite-{self.css_name}")
        for control in controls.values():
            control.observe(self._on_change, names="value")
        self.update()

    # -- what subclasses provide
    def describe(self) -> str:
        raise NotImplementedError

    def draw(self) -> Any:
        raise NotImplementedError

    # -- machinery
    @property
    def values(self) -> dict[str, Any]:
        """Current value of every control, by name."""
        return {name: control.value for name, control in self.controls.items()}

    def _on_change(self, _change: dict) -> None:
        if not self._holding:
            self.update()

    def update(self) -> None:
        """Recompute the count text and redraw the figure from the controls' values."""
        self.text.value = self.describe()
        self.image.value = viz.figure_to_png(self.draw())

    def __repr__(self) -> str:
        # Both ipywidgets versions use repr() as the widget's text/plain form: keep it short,
        # since the default widget repr would print the PNG bytes into stored notebook outputs.
        args = ", ".join(f"{name}={value!r}" for name, value in self.values.items())
        return f"{type(self).__name__}({args})"


def slider(description: str, value: int, low: int, high: int, step: int = 1) -> WarningSlider:
    return WarningSlider(
        value=value,
        min=low,
        max=high,
        step=step,
        description=description,
        continuous_update=False,  # redraw when the handle is released, not on every pixel
        style={"description_width": "initial"},
    )


def table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th style='padding:2px 8px'>{html.escape(h)}</th>" for h in header)
    def cell(j: int, value: Any) -> str:
        align = "left" if j == 0 else "right"  # names left, numbers right
        return f"<td style='padding:2px 8px;text-align:{align}'>{html.escape(str(value))}</td>"

    body = "".join("<tr>" + "".join(cell(j, c) for j, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table class='seqlite-table'><tr>{head}</tr>{body}</table>"


def count_slider(panel: str, description: str, name: str, value: Any, reach_name: str, reach: Any, limit: int,
                 why: str) -> WarningSlider:
    """The one check of a panel's count and its slider: ``name`` (``value``) and ``reach_name`` as positive ints.

    The slider reaches at least ``value`` (``SeqConvPanel(g=20)`` shows g=20 with the default reach) and at
    most ``limit``, the bound that keeps a redraw quick; a value or reach beyond it is clamped with a warning
    that says ``why``. The slider is made with its value already in range, so no trait validation has to clamp
    it (traitlets validates ``value`` and ``max`` in an order that depends on ``PYTHONHASHSEED``).
    """
    value, reach = positive_int(name, value), positive_int(reach_name, reach)
    reach = clamp(panel, reach_name, reach, 1, limit, why, stacklevel=5)
    value = clamp(panel, name, value, 1, limit, why, stacklevel=5)
    return slider(description, value, 1, max(reach, value))


def checked_in_channels(value: Any, limit: int) -> int:
    """``in_channels`` of a panel's layer: a positive int up to ``limit``.

    Not a slider: clamping it would show a different layer than the one asked for, so it is refused.
    """
    number = positive_int("in_channels", value)
    if number > limit:
        raise ValueError(f"in_channels must be between 1 and {limit} for a panel, got {number}")
    return number
