"""One notebook open in JupyterLab in a Playwright page: wait for its kernel, run it as a student would, find errors."""

from __future__ import annotations

import re
import time
from pathlib import Path

from playwright.sync_api import Locator, Page

KERNEL_READY_TIMEOUT_S = 90.0
RUN_ALL_TIMEOUT_S = 240.0
LOST_EXECUTION_GRACE_S = 5.0
FIRST_EXECUTION_ATTEMPTS = 3
POLL_S = 0.25

EXECUTED_PROMPT = re.compile(r"^\[\d+\]:$")
PENDING_PROMPT = "[*]:"
TRACEBACK_MARK = "Traceback (most recent call last)"

# Prompts of every code cell and the kernel status, read in one round trip.
NOTEBOOK_STATE_JS = """panel => ({
    prompts: [...panel.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt')].map(p => p.textContent.trim()),
    status: panel.querySelector('.jp-Notebook-ExecutionIndicator')?.getAttribute('data-status') ?? 'unknown',
})"""


class NotebookFailure(AssertionError):
    """The notebook failed or did not reach the awaited state in time (message says which, screenshot saved)."""


class LabNotebook:
    """A notebook panel in JupyterLab, driven through its menus, keyboard and DOM."""

    def __init__(self, page: Page, name: str, artifacts_dir: Path) -> None:
        self.page = page
        self.name = name
        self.artifacts_dir = artifacts_dir
        self.panel = page.locator(".jp-NotebookPanel:visible")

    @classmethod
    def open(cls, page: Page, url: str, name: str, artifacts_dir: Path) -> LabNotebook:
        """Load `url` (a Lab tree URL of one notebook) and wait until its kernel reports idle."""
        notebook = cls(page, name, artifacts_dir)
        page.goto(url)
        notebook.wait_for_kernel_idle()
        return notebook

    def screenshot(self, step: str) -> Path:
        """Save a screenshot of the whole page as `<name>-<step>.png` in the artefacts folder."""
        path = self.artifacts_dir / f"{self.name}-{step}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def fail(self, message: str) -> NotebookFailure:
        """A `NotebookFailure` for `message`, after saving a screenshot it points to."""
        shot = self.screenshot("failure")
        return NotebookFailure(f"{self.name}: {message}\n(screenshot: {shot})")

    def state(self) -> dict:
        """The code cells' prompts (e.g. '[3]:', '[*]:', '[ ]:') and the kernel status of this panel."""
        return self.panel.evaluate(NOTEBOOK_STATE_JS)

    def kernel_status(self) -> str:
        """The kernel status shown by the notebook toolbar ('idle', 'busy', 'starting', ...)."""
        return self.state()["status"]

    def wait_for_kernel_idle(self, timeout_s: float = KERNEL_READY_TIMEOUT_S) -> None:
        """Wait until the notebook is shown and its kernel reports idle (a kernel-choice dialog is an error)."""
        deadline = time.monotonic() + timeout_s
        status = "no notebook panel"
        while time.monotonic() < deadline:
            if self.page.locator(".jp-Dialog").count():
                dialog = self.page.locator(".jp-Dialog").first.inner_text()
                raise self.fail(f"JupyterLab asked a question instead of starting the kernel: {dialog!r}")
            if self.panel.count() == 1:
                status = self.kernel_status()
                if status == "idle":
                    return
            self.page.wait_for_timeout(POLL_S * 1000)
        raise self.fail(f"kernel not idle after {timeout_s:.0f} s (last status: {status})")

    def code_cell(self, index: int) -> Locator:
        """The `index`-th code cell of the notebook."""
        return self.panel.locator(".jp-CodeCell").nth(index)

    def run_menu_command(self, menu: str, item: str) -> None:
        """Click `item` in the menu bar's `menu`."""
        self.page.get_by_role("menuitem", name=menu, exact=True).click()
        self.page.get_by_role("menuitem", name=item, exact=True).click()

    def run_first_cell_until_accepted(self) -> None:
        """Run the first code cell (Ctrl+Enter), re-running it if the kernel drops the request.

        The toolbar says "Idle" a moment before the kernel really takes work; a request sent then
        is lost: the prompt stays unnumbered while the kernel stays idle. Then we send it again.
        """
        for _ in range(FIRST_EXECUTION_ATTEMPTS):
            self.code_cell(0).locator(".jp-InputPrompt").click()
            self.page.keyboard.press("Control+Enter")
            if self.wait_for_first_prompt_number():
                return
        raise self.fail(f"the kernel ignored the first cell {FIRST_EXECUTION_ATTEMPTS} times")

    def wait_for_first_prompt_number(self, timeout_s: float = KERNEL_READY_TIMEOUT_S) -> bool:
        """True once cell 0 is numbered; False if it stays unnumbered while the kernel idles for a grace period."""
        deadline = time.monotonic() + timeout_s
        idle_since = time.monotonic()
        while time.monotonic() < deadline:
            state = self.state()
            if EXECUTED_PROMPT.match(state["prompts"][0]):
                return True
            if state["status"] != "idle":
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since > LOST_EXECUTION_GRACE_S:
                return False
            self.page.wait_for_timeout(POLL_S * 1000)
        raise self.fail(f"the first cell was still running after {timeout_s:.0f} s")

    def run_all(self, timeout_s: float = RUN_ALL_TIMEOUT_S) -> None:
        """Run every cell from the Run menu; wait until done; raise with the traceback if a cell failed."""
        self.run_first_cell_until_accepted()
        self.run_menu_command("Run", "Run All Cells")
        self.wait_until_settled(timeout_s)
        self.raise_on_errors()

    def wait_until_settled(self, timeout_s: float) -> None:
        """Wait until no cell is pending and the kernel is idle, twice in a row."""
        deadline = time.monotonic() + timeout_s
        settled_polls = 0
        state = self.state()
        while settled_polls < 2:
            if time.monotonic() > deadline:
                pending = [i for i, prompt in enumerate(state["prompts"]) if prompt == PENDING_PROMPT]
                raise self.fail(
                    f"cells still running after {timeout_s:.0f} s: code cells {pending} "
                    f"(kernel {state['status']})"
                )
            self.page.wait_for_timeout(POLL_S * 1000)
            state = self.state()
            quiet = state["status"] == "idle" and PENDING_PROMPT not in state["prompts"]
            settled_polls = settled_polls + 1 if quiet else 0

    def raise_on_errors(self) -> None:
        """Raise naming the first code cell that was not run or that shows a traceback."""
        outputs = self.panel.locator(".jp-CodeCell").evaluate_all(
            "cells => cells.map(c => c.querySelector('.jp-OutputArea')?.innerText ?? '')"
        )
        prompts = self.state()["prompts"]
        for index, (prompt, output) in enumerate(zip(prompts, outputs, strict=True)):
            if TRACEBACK_MARK in output:
                raise self.fail(f"code cell {index} raised:\n{output[-3000:]}")
            if not EXECUTED_PROMPT.match(prompt):
                raise self.fail(f"code cell {index} was not run (prompt {prompt!r})")
