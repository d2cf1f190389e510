"""A JupyterLab server for the browser tests: this venv's Lab on a free localhost port, isolated and stopped cleanly."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STARTUP_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0

# User settings that make the page deterministic: every cell stays in the DOM (no virtual scrolling)
# and no "Jupyter news?" toast covers the notebook.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


@dataclass
class LabServer:
    """A running JupyterLab: where it serves from, its base URL, its process and log."""

    root_dir: Path
    url: str
    process: subprocess.Popen
    log_path: Path

    def notebook_url(self, path: str, workspace: str) -> str:
        """URL that opens `path` alone in a fresh, named workspace (no tabs restored from other pages)."""
        return f"{self.url}/lab/workspaces/{workspace}/tree/{path}?reset"

    def request(self, method: str, endpoint: str) -> object:
        """Call the server's REST API; return the decoded JSON body (None when empty)."""
        req = urllib.request.Request(f"{self.url}{endpoint}", method=method)
        with urllib.request.urlopen(req, timeout=10) as response:
            body = response.read()
        return json.loads(body) if body else None

    def shut_down_sessions(self, path: str) -> None:
        """Stop the kernel sessions of the notebook at `path` (relative to the root), freeing their memory."""
        for session in self.request("GET", "/api/sessions"):
            if session.get("path") == path:
                self.request("DELETE", f"/api/sessions/{session['id']}")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for error messages."""
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self) -> None:
        """Ask the server to shut down (it stops its kernels); kill its process group if it does not."""
        if self.process.poll() is None:
            try:
                self.request("POST", "/api/shutdown")
            except (OSError, urllib.error.URLError):
                pass
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=STOP_TIMEOUT_S)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_lab_settings(settings_dir: Path) -> None:
    """Write `LAB_SETTINGS` as JupyterLab user settings under `settings_dir`."""
    for relative, values in LAB_SETTINGS.items():
        path = settings_dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def server_environment(state_dir: Path, extra_env: dict[str, str]) -> dict[str, str]:
    """This process's environment with Jupyter's config/data/runtime dirs isolated under `state_dir`."""
    env = dict(os.environ)
    for variable, sub in (
        ("JUPYTER_CONFIG_DIR", "config"),
        ("JUPYTER_DATA_DIR", "data"),
        ("JUPYTER_RUNTIME_DIR", "runtime"),
        ("IPYTHONDIR", "ipython"),
    ):
        env[variable] = str(state_dir / sub)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra_env)
    return env


def server_command(root_dir: Path, state_dir: Path, port: int) -> list[str]:
    """The command line of a token-less JupyterLab bound to 127.0.0.1:`port`, run by this interpreter."""
    return [
        sys.executable, "-m", "jupyterlab", "--no-browser",
        "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
        "--ServerApp.token=", "--ServerApp.password=", "--ServerApp.allow_root=True",
        "--ServerApp.disable_check_xsrf=True",  # loopback-only test server: lets `request` DELETE/POST
        "--ServerApp.terminals_enabled=False", f"--ServerApp.root_dir={root_dir}",
        f"--LabApp.user_settings_dir={state_dir / 'settings'}",
        f"--LabApp.workspaces_dir={state_dir / 'workspaces'}",
    ]  # fmt: skip


def wait_until_ready(server: LabServer, timeout_s: float = STARTUP_TIMEOUT_S) -> None:
    """Poll `/api/status` until the server answers; raise with the log tail if it dies or times out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(
                f"JupyterLab exited with code {server.process.returncode} before answering {server.url}/api/status."
                f"\n--- server log ({server.log_path}) ---\n{server.log_tail()}"
            )
        try:
            server.request("GET", "/api/status")
            return
        except (OSError, urllib.error.URLError):
            time.sleep(0.5)
    server.stop()
    raise TimeoutError(
        f"JupyterLab did not answer {server.url}/api/status within {timeout_s:.0f} s."
        f"\n--- server log ({server.log_path}) ---\n{server.log_tail()}"
    )


def start_lab_server(root_dir: Path, state_dir: Path, extra_env: dict[str, str]) -> LabServer:
    """Start JupyterLab serving `root_dir` with state under `state_dir`; return once it answers."""
    write_lab_settings(state_dir / "settings")
    port = free_port()
    log_path = state_dir / "jupyterlab.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server_command(root_dir, state_dir, port),
            cwd=root_dir,
            env=server_environment(state_dir, extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LabServer(root_dir=root_dir, url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    wait_until_ready(server)
    return server
