"""An explorer widget as the student sees it: a control, the readout beside it and the figure it redraws."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from figure_pixels import png_to_rgb
from playwright.sync_api import Locator, expect

UPDATE_TIMEOUT_MS = 30_000
READOUT_HOOK = "pspnet-readout"
FIGURE_HOOK = "pspnet-figure"


@dataclass(frozen=True)
class ControlSpec:
    """How to find a control: the stable CSS class the library (or a test notebook) gives it."""

    hook_class: str  # e.g. "pspnet-dilation-slider", set with widget.add_class(...)
    widget_class: str  # ipywidgets' DOM class, e.g. "widget-slider" or "widget-select-multiple"

    @property
    def selector(self) -> str:
        """CSS selector of the control: its ipywidgets class and its hook class together."""
        return f".{self.widget_class}.{self.hook_class}"


class ExplorerView:
    """Locators and student actions for one explorer: control, readout (HTML) and figure (an <img>)."""

    def __init__(self, panel: Locator, spec: ControlSpec, artifacts_dir: Path, name: str) -> None:
        page = panel.page
        self.control = panel.locator(spec.selector)
        expect(self.control, f"exactly one live control {spec}").to_have_count(1, timeout=UPDATE_TIMEOUT_MS)
        expect(self.control).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
        # Innermost box holding the control and a figure: the explorer's own VBox.
        self.box = (
            panel.locator(".widget-vbox")
            .filter(has=page.locator(spec.selector))
            .filter(has=page.locator(f"img.{FIGURE_HOOK}"))
            .last
        )
        self.readout = self.only(f".{READOUT_HOOK}")
        self.figure = self.only(f"img.{FIGURE_HOOK}")
        self.artifacts_dir = artifacts_dir
        self.name = name

    def only(self, selector: str) -> Locator:
        """The one element in the explorer's box matching `selector` (fails if there are none or several)."""
        locator = self.box.locator(selector)
        expect(locator, f"exactly one {selector} in the explorer").to_have_count(1, timeout=UPDATE_TIMEOUT_MS)
        return locator

    def readout_text(self) -> str:
        """The readout's visible text, whitespace collapsed."""
        return " ".join(self.readout.inner_text().split())

    def figure_pixels(self, step: str) -> np.ndarray:
        """Screenshot the figure as shown, save it as `<name>-<step>.png`, return its RGB pixels."""
        # Centred, so no toolbar border or shadow at the scroll area's edges overlaps the screenshot.
        self.figure.evaluate("img => img.scrollIntoView({block: 'center', inline: 'center'})")
        png = self.figure.screenshot(
            path=self.artifacts_dir / f"{self.name}-{step}.png", animations="disabled"
        )
        return png_to_rgb(png)

    def change(self, action: Callable[[], None], what: str) -> None:
        """Do `action`, then wait until both the readout text and the figure image have been replaced."""
        old_text = self.readout.inner_text()
        old_src = self.figure.get_attribute("src")
        action()
        expect(self.readout, f"readout unchanged {UPDATE_TIMEOUT_MS} ms after {what}").not_to_have_text(
            old_text, timeout=UPDATE_TIMEOUT_MS
        )
        expect(self.figure, f"figure not redrawn {UPDATE_TIMEOUT_MS} ms after {what}").not_to_have_attribute(
            "src", old_src or "", timeout=UPDATE_TIMEOUT_MS
        )
        self.figure.evaluate("img => img.decode()")

    # --- sliders (ipywidgets IntSlider, drawn by noUiSlider) ---

    @property
    def slider_handle(self) -> Locator:
        """The slider's draggable, focusable handle."""
        return self.control.locator(".noUi-handle")

    def slider_value(self) -> int:
        """The slider's value as announced to assistive technology (aria-valuenow)."""
        return round(float(self.slider_handle.get_attribute("aria-valuenow")))

    def slider_bounds(self) -> tuple[int, int]:
        """The slider's (min, max)."""
        handle = self.slider_handle
        return round(float(handle.get_attribute("aria-valuemin"))), round(
            float(handle.get_attribute("aria-valuemax"))
        )

    def slider_readout(self) -> str:
        """The number printed beside the slider."""
        return self.control.locator(".widget-readout").inner_text().strip()

    def press_slider_key(self, key: str) -> None:
        """Focus the slider handle and press `key` (e.g. ArrowRight), as a keyboard user would."""
        self.slider_handle.focus()
        self.slider_handle.press(key)

    def step_slider(self, key: str) -> None:
        """Press `key` on the slider and wait until readout and figure have been redrawn."""
        self.change(lambda: self.press_slider_key(key), what=f"pressing {key} on the slider")

    # --- multiple selections (ipywidgets SelectMultiple, a <select multiple>) ---

    def selected_options(self) -> list[str]:
        """Labels of the selected options, in display order."""
        return self.control.locator("select").evaluate(
            "s => [...s.selectedOptions].map(o => o.textContent.trim())"
        )

    def option_labels(self) -> list[str]:
        """Labels of all options, in display order."""
        return [text.strip() for text in self.control.locator("option").all_inner_texts()]

    def toggle_option(self, label: str) -> None:
        """Ctrl+click the option `label` (adds or removes it, keeping the others) and wait for the redraw."""
        option = self.control.locator("option").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$"))
        self.change(lambda: option.click(modifiers=["Control"]), what=f"Ctrl+clicking option {label}")
