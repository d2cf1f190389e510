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
    """How to find a control: its stable CSS hook class if the notebook sets one, else its description."""

    hook_class: str
    description: str
    widget_class: str  # ipywidgets' DOM class, e.g. "widget-slider" or "widget-select-multiple"


def find_control(panel: Locator, spec: ControlSpec) -> Locator:
    """Selector (relative, for `panel.locator` or `has=`) of the control `spec`: hook class first, then label."""
    page = panel.page
    expect(panel.locator(f".{spec.widget_class}").first).to_be_visible(timeout=UPDATE_TIMEOUT_MS)
    hooked = page.locator(f".{spec.widget_class}.{spec.hook_class}")
    if panel.locator(hooked).count():
        return hooked
    label = page.locator("label.widget-label", has_text=re.compile(rf"^\s*{re.escape(spec.description)}\s*$"))
    return page.locator(f".{spec.widget_class}").filter(has=label)


class ExplorerView:
    """Locators and student actions for one explorer: control, readout (HTML) and figure (an <img>)."""

    def __init__(self, panel: Locator, spec: ControlSpec, artifacts_dir: Path, name: str) -> None:
        control = find_control(panel, spec)
        self.control = panel.locator(control)
        expect(self.control, f"exactly one live control {spec}").to_have_count(1, timeout=UPDATE_TIMEOUT_MS)
        # Innermost box holding the control and an image: the explorer's own VBox.
        self.box = (
            panel.locator(".widget-vbox").filter(has=control).filter(has=panel.page.locator("img")).last
        )
        self.readout = self.first_of(f".{READOUT_HOOK}", ".widget-html-content")
        self.figure = self.first_of(f"img.{FIGURE_HOOK}", "img")
        self.artifacts_dir = artifacts_dir
        self.name = name

    def first_of(self, hooked: str, fallback: str) -> Locator:
        """The first element in the box matching the `hooked` selector, else the `fallback` one."""
        locator = self.box.locator(hooked)
        return locator.first if locator.count() else self.box.locator(fallback).first

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
