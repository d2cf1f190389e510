"""pspnet_lib.runtime on fake Colab and Kaggle runtimes: platform, credentials, attached data, Drive, the GPU-run gate.

Colab is faked by putting modules into sys.modules (`google.colab`, `.userdata`, `.drive`), Kaggle by its
environment variable and a temporary folder standing in for /kaggle/input. Nothing here touches the network:
every download is a fake that records its call.
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import types
from pathlib import Path

import pytest

from pspnet_lib import runtime
from pspnet_lib.data import CredentialsRejected, DataError


class SecretNotFoundError(Exception):
    """Stands in for google.colab.userdata.SecretNotFoundError."""


@pytest.fixture
def no_colab(monkeypatch):
    """A machine where `google.colab` cannot be imported (a None entry makes the import fail)."""
    for name in ("google.colab", "google.colab.userdata", "google.colab.drive"):
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def fake_colab(monkeypatch):
    """A Colab runtime: `google.colab` with `userdata` (secrets in `.secrets`) and `drive` (mounts in `.mounts`)."""
    colab = types.ModuleType("google.colab")
    userdata = types.ModuleType("google.colab.userdata")
    userdata.secrets = {}

    def get(name):
        if name not in userdata.secrets:
            raise SecretNotFoundError(f"Secret {name} does not exist.")
        return userdata.secrets[name]

    userdata.get = get
    drive = types.ModuleType("google.colab.drive")
    drive.mounts = []
    drive.mount = lambda mount_point: (drive.mounts.append(mount_point), Path(mount_point, "MyDrive").mkdir(parents=True))
    colab.userdata, colab.drive = userdata, drive
    for name, module in (("google.colab", colab), ("google.colab.userdata", userdata), ("google.colab.drive", drive)):
        monkeypatch.setitem(sys.modules, name, module)
    return colab


@pytest.fixture
def no_real_pairs(monkeypatch, tmp_path):
    """No real pairs in any place the library looks (data folder, kagglehub cache, $CITYSCAPES_PAIRS_DIR)."""
    monkeypatch.delenv("CITYSCAPES_PAIRS_DIR", raising=False)
    monkeypatch.setenv("PSPNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kagglehub"))
    for name in ("KAGGLE_API_TOKEN", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_KERNEL_RUN_TYPE"):
        monkeypatch.delenv(name, raising=False)


def make_pairs_folder(root: Path) -> Path:
    """A folder with train/ and val/ holding one (empty) pair file each, as the layout checks need."""
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
        (root / split / "1.jpg").write_bytes(b"")
    return root


class FakeDownload:
    """Records calls; returns `result` or raises `error` (never touches the network)."""

    def __init__(self, result: Path | None = None, error: Exception | None = None) -> None:
        self.calls, self.result, self.error = 0, result, error

    def __call__(self) -> Path:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return self.result


# --- platform ---------------------------------------------------------------------------------------


def test_detects_colab_from_its_module(fake_colab):
    assert runtime.detect_platform(environ={}) == "colab"


def test_detects_kaggle_from_its_environment(no_colab):
    assert runtime.detect_platform(environ={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}) == "kaggle"


def test_anything_else_is_local(no_colab):
    assert runtime.detect_platform(environ={"HOME": "/root"}) == "local"


def test_describes_platform_and_gpus():
    assert runtime.describe_runtime("colab", ["Tesla T4"]) == "Running on Google Colab with 1 GPU: Tesla T4."
    assert runtime.describe_runtime("kaggle", ["Tesla T4", "Tesla T4"]) == (
        "Running on a Kaggle notebook with 2 GPUs: 2x Tesla T4."
    )
    assert "no GPU" in runtime.describe_runtime("local", [])


def test_unknown_platform_is_named():
    with pytest.raises(ValueError, match="platform must be one of .* got 'aws'"):
        runtime.describe_runtime("aws", [])


# --- credentials ------------------------------------------------------------------------------------


def test_credentials_from_the_environment_win(fake_colab):
    fake_colab.userdata.secrets = {"KAGGLE_USERNAME": "secret-user", "KAGGLE_KEY": "secret-key"}
    found = runtime.kaggle_credentials({"KAGGLE_USERNAME": "env-user", "KAGGLE_KEY": "env-key"})
    assert (found.username, found.key, found.source) == ("env-user", "env-key", "environment")


def test_credentials_from_colab_secrets(fake_colab):
    fake_colab.userdata.secrets = {"KAGGLE_USERNAME": " ada \n", "KAGGLE_KEY": "0123abcd"}
    found = runtime.kaggle_credentials({})
    assert (found.username, found.key, found.source) == ("ada", "0123abcd", "Colab secrets")
    assert "0123abcd" not in repr(found)


@pytest.mark.parametrize("secrets", [{}, {"KAGGLE_USERNAME": "ada"}, {"KAGGLE_USERNAME": "ada", "KAGGLE_KEY": "  "}])
def test_incomplete_colab_secrets_are_no_credentials(fake_colab, secrets):
    fake_colab.userdata.secrets = secrets
    assert runtime.kaggle_credentials({"KAGGLE_USERNAME": "only-a-name"}) is None


def test_a_token_comes_first_from_the_environment_then_from_colab_secrets(fake_colab):
    fake_colab.userdata.secrets = {"KAGGLE_API_TOKEN": "secret-token", "KAGGLE_USERNAME": "ada", "KAGGLE_KEY": "k"}
    legacy = {"KAGGLE_USERNAME": "env-user", "KAGGLE_KEY": "env-key"}
    found = runtime.kaggle_credentials({"KAGGLE_API_TOKEN": " env-token ", **legacy})
    assert (found.token, found.source, found.names) == ("env-token", "environment", "KAGGLE_API_TOKEN")
    assert runtime.kaggle_credentials(legacy).username == "env-user"  # as kagglehub: environment before secrets
    found = runtime.kaggle_credentials({})
    assert (found.token, found.source) == ("secret-token", "Colab secrets")
    assert "secret-token" not in repr(found)


def test_no_credentials_off_colab(no_colab):
    assert runtime.kaggle_credentials({}) is None


def test_export_puts_a_token_where_kagglehub_reads_it():
    environ: dict[str, str] = {}
    runtime.export_kaggle_credentials(runtime.kaggle_credentials({"KAGGLE_API_TOKEN": "KGAT_1"}), environ)
    assert environ == {"KAGGLE_API_TOKEN": "KGAT_1"}


def test_export_puts_credentials_where_kagglehub_reads_them():
    environ: dict[str, str] = {}
    runtime.export_kaggle_credentials(runtime.KaggleCredentials("ada", "k3y", "Colab secrets"), environ)
    assert environ == {"KAGGLE_USERNAME": "ada", "KAGGLE_KEY": "k3y"}


# --- a dataset attached to a Kaggle notebook ----------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    ["cityscapes-image-pairs", "cityscapes-image-pairs/cityscapes_data/cityscapes_data",
     "datasets/dansbecker/cityscapes-image-pairs/cityscapes_data"],
)
def test_finds_the_attached_dataset_at_any_usual_depth(tmp_path, relative):
    (tmp_path / "input" / "some-other-dataset" / "files").mkdir(parents=True)
    expected = make_pairs_folder(tmp_path / "input" / relative)
    assert runtime.attached_kaggle_dataset(tmp_path / "input") == expected


def test_no_attached_dataset(tmp_path):
    (tmp_path / "input" / "other" / "train").mkdir(parents=True)  # train/ without val/
    assert runtime.attached_kaggle_dataset(tmp_path / "input") is None
    assert runtime.attached_kaggle_dataset(tmp_path / "missing") is None


# --- getting the real pairs ---------------------------------------------------------------------------


def test_local_without_credentials_stops_with_one_line(no_colab, no_real_pairs):
    download = FakeDownload()
    with pytest.raises(runtime.StopNotebook) as stop:
        runtime.obtain_real_pairs("local", environ={}, download=download, synthetic_switch="ALLOW_SYNTHETIC")
    message = str(stop.value)
    assert download.calls == 0
    assert "\n" not in message and "KAGGLE_USERNAME" in message and "ALLOW_SYNTHETIC = True" in message
    assert "set $KAGGLE_API_TOKEN (or $KAGGLE_USERNAME and $KAGGLE_KEY" in message
    assert stop.value._render_traceback_() == [f"Stopped: {message}"]


def test_colab_without_secrets_says_where_to_add_them(fake_colab, no_real_pairs):
    with pytest.raises(runtime.StopNotebook, match="Colab secrets KAGGLE_USERNAME and KAGGLE_KEY") as stop:
        runtime.obtain_real_pairs("colab", environ={}, download=FakeDownload())
    assert "add the Colab secret KAGGLE_API_TOKEN (or the Colab secrets" in str(stop.value)


def test_colab_secrets_are_exported_and_the_pairs_downloaded(fake_colab, no_real_pairs, tmp_path):
    fake_colab.userdata.secrets = {"KAGGLE_USERNAME": "ada", "KAGGLE_KEY": "k3y"}
    environ: dict[str, str] = {}
    download = FakeDownload(result=tmp_path / "downloaded")
    assert runtime.obtain_real_pairs("colab", environ=environ, download=download) == tmp_path / "downloaded"
    assert download.calls == 1 and environ == {"KAGGLE_USERNAME": "ada", "KAGGLE_KEY": "k3y"}


def test_a_colab_secret_token_is_exported_as_kagglehub_reads_it(fake_colab, no_real_pairs, tmp_path):
    fake_colab.userdata.secrets = {"KAGGLE_API_TOKEN": " KGAT_0123 \n", "KAGGLE_USERNAME": "ada", "KAGGLE_KEY": "k3y"}
    environ: dict[str, str] = {}
    download = FakeDownload(result=tmp_path / "downloaded")
    assert runtime.obtain_real_pairs("colab", environ=environ, download=download) == tmp_path / "downloaded"
    assert download.calls == 1 and environ == {"KAGGLE_API_TOKEN": "KGAT_0123"}


@pytest.mark.parametrize(
    ("platform", "where"), [("colab", "the Colab secret"), ("local", "the environment variable")]
)
def test_a_rejected_token_stops_with_one_line_naming_what_to_set(fake_colab, no_real_pairs, platform, where):
    rejected = CredentialsRejected("Kaggle rejected the credentials (UnauthenticatedError: 401)")
    download = FakeDownload(error=rejected)
    with pytest.raises(runtime.StopNotebook) as stop:
        runtime.obtain_real_pairs(platform, environ={"KAGGLE_API_TOKEN": "KGAT_old"}, download=download)
    message = str(stop.value)
    assert download.calls == 1 and "\n" not in message and "KGAT_old" not in message
    assert message.startswith("Kaggle rejected the KAGGLE_API_TOKEN from environment (expired or mistyped)")
    assert f"create a new API token at kaggle.com > Settings > API and set {where} KAGGLE_API_TOKEN to it" in message


def test_kaggle_uses_the_attached_dataset_before_downloading(no_colab, no_real_pairs, tmp_path):
    attached = make_pairs_folder(tmp_path / "input" / "cityscapes-image-pairs" / "cityscapes_data")
    download = FakeDownload()
    assert runtime.obtain_real_pairs("kaggle", input_root=tmp_path / "input", environ={}, download=download) == attached
    assert download.calls == 0


def test_kaggle_downloads_without_credentials(no_colab, no_real_pairs, tmp_path):
    """In a Kaggle notebook kagglehub attaches the dataset itself: no credentials needed."""
    download = FakeDownload(result=tmp_path / "attached-by-kagglehub")
    found = runtime.obtain_real_pairs("kaggle", input_root=tmp_path / "empty", environ={}, download=download)
    assert found == tmp_path / "attached-by-kagglehub" and download.calls == 1


def test_a_failed_download_stops_with_one_line(no_colab, no_real_pairs):
    offline = DataError("could not download dansbecker/cityscapes-image-pairs (ConnectionError: no network); check it. More.")
    with pytest.raises(runtime.StopNotebook) as stop:
        runtime.obtain_real_pairs("local", environ={"KAGGLE_USERNAME": "a", "KAGGLE_KEY": "b"}, download=FakeDownload(error=offline))
    assert "\n" not in str(stop.value)
    assert str(stop.value).startswith("could not download dansbecker/cityscapes-image-pairs (ConnectionError")
    assert "KAGGLE_USERNAME" in str(stop.value)


def test_pairs_already_here_need_no_download(no_colab, no_real_pairs, monkeypatch, tmp_path):
    here = make_pairs_folder(tmp_path / "pairs")
    monkeypatch.setenv("CITYSCAPES_PAIRS_DIR", str(here))
    download = FakeDownload()
    assert runtime.obtain_real_pairs("colab", environ={}, download=download) == here and download.calls == 0


def test_gpu_run_refuses_the_synthetic_city_unless_asked(no_colab, no_real_pairs, monkeypatch, tmp_path, capsys):
    monkeypatch.setattr("pspnet_lib.data.ensure_synthetic_dataset", lambda: tmp_path / "toy")
    with pytest.raises(runtime.StopNotebook, match="ALLOW_SYNTHETIC_GPU_RUN = True"):
        runtime.gpu_run_dataset("local", False, "ALLOW_SYNTHETIC_GPU_RUN", environ={}, download=FakeDownload())
    chosen = runtime.gpu_run_dataset("local", True, "ALLOW_SYNTHETIC_GPU_RUN", environ={}, download=FakeDownload())
    assert chosen == tmp_path / "toy" and "synthetic city" in capsys.readouterr().out


def test_gpu_run_takes_the_real_pairs_even_when_synthetic_is_allowed(no_colab, no_real_pairs, tmp_path, capsys):
    download = FakeDownload(result=tmp_path / "real")
    chosen = runtime.gpu_run_dataset("local", True, "X", environ={"KAGGLE_USERNAME": "a", "KAGGLE_KEY": "b"}, download=download)
    assert chosen == tmp_path / "real"
    assert capsys.readouterr().out.startswith("Using the real Cityscapes pairs at ")


# --- Google Drive -------------------------------------------------------------------------------------


def test_drive_is_mounted_and_the_runs_folder_created(fake_colab, tmp_path):
    runs = runtime.mount_drive_runs(tmp_path / "drive")
    assert fake_colab.drive.mounts == [str(tmp_path / "drive")]
    assert runs == tmp_path / "drive" / "MyDrive" / "pspnet-course" / "runs" and runs.is_dir()


def test_drive_off_colab_stops_with_one_line(no_colab, tmp_path):
    with pytest.raises(runtime.StopNotebook, match="only on Google Colab"):
        runtime.mount_drive_runs(tmp_path / "drive")


@pytest.mark.parametrize(
    ("platform", "keep_on_drive", "on_drive"),
    [("colab", True, True), ("colab", False, False), ("kaggle", True, False), ("local", True, False)],
)
def test_runs_go_to_drive_only_on_colab_when_asked(platform, keep_on_drive, on_drive, tmp_path):
    mounts: list[int] = []
    drive_runs = tmp_path / "drive-runs"
    chosen = runtime.runs_folder(platform, keep_on_drive, tmp_path / "local", mount=lambda: mounts.append(1) or drive_runs)
    assert chosen == (drive_runs if on_drive else tmp_path / "local") and len(mounts) == int(on_drive)


# --- importable anywhere ------------------------------------------------------------------------------


def test_imports_only_the_standard_library():
    """As on a GPU server without Jupyter: importing the module loads nothing outside the standard library."""
    code = (
        "import sys\nbefore = set(sys.modules)\nimport pspnet_lib.runtime\n"
        "new = {name.split('.')[0] for name in set(sys.modules) - before}\n"
        "print(sorted(new - set(sys.stdlib_module_names) - {'pspnet_lib'}))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --- the first cell's restart check --------------------------------------------------------------------


def _module(name: str, version: str | None) -> types.ModuleType:
    """A stand-in for a module the kernel imported, with `__version__` when given."""
    module = types.ModuleType(name)
    if version is not None:
        module.__version__ = version
    return module


def test_an_upgraded_package_the_kernel_had_imported_asks_for_a_restart(monkeypatch):
    monkeypatch.setitem(sys.modules, "ipywidgets", _module("ipywidgets", "7.7.1"))  # imported before the install
    before = {**runtime.installed_distributions(), "ipywidgets": "7.7.1"}  # the install then moved it to 8.x
    stale = runtime.modules_needing_restart(before)
    assert stale == [f"ipywidgets 7.7.1 -> {importlib.metadata.version('ipywidgets')}"]
    with pytest.raises(runtime.StopNotebook) as stopped:
        runtime.stop_if_restart_needed(before)
    message = str(stopped.value)
    assert "\n" not in message and message.startswith("The course's install changed ipywidgets 7.7.1 -> 8.")
    assert "restart the runtime (Runtime > Restart session on Colab" in message
    assert stopped.value._render_traceback_() == [f"Stopped: {message}"]


def test_an_install_that_changed_nothing_imported_needs_no_restart(monkeypatch):
    before = runtime.installed_distributions()
    runtime.stop_if_restart_needed(before)  # nothing changed at all
    monkeypatch.delitem(sys.modules, "yaml", raising=False)
    monkeypatch.setitem(before, "pyyaml", "0.1")  # changed, but never imported by this kernel
    monkeypatch.setitem(before, "not-there-any-more", "1.0")  # removed, never imported
    assert runtime.modules_needing_restart(before) == []


def test_the_setup_cells_record_reads_with_the_standard_library_only():
    """The first cell records `{d.name: d.version ...}` before the library exists: names in any spelling."""
    recorded = {d.name: d.version for d in importlib.metadata.distributions()}
    assert runtime.modules_needing_restart(recorded) == []


def test_changed_removed_and_added_distributions_against_imported_modules():
    modules = {name: _module(name, None) for name in ("keras", "PIL", "tensorflow", "gone", "yaml")}
    before = {"keras": "3.13.2", "Pillow": "11.3.0", "tensorflow_cpu": "2.20.0", "gone": "1.0", "PyYAML": "6.0"}
    installed = {"keras": "3.15.1", "pillow": "11.3.0", "tensorflow-cpu": "2.20.0", "pyyaml": "6.0", "new": "1"}
    owners = {"keras": ["keras"], "PIL": ["pillow"], "tensorflow": ["tensorflow_cpu"], "gone": ["gone"], "yaml": ["PyYAML"]}
    stale = runtime.modules_needing_restart(before, modules, installed, lambda: owners)
    assert stale == ["gone 1.0 -> removed", "keras 3.13.2 -> 3.15.1"]
    del modules["keras"], modules["gone"]
    assert runtime.modules_needing_restart(before, modules, installed, lambda: owners) == []


# --- the student's own photo (notebook 07) ------------------------------------------------------------


def test_a_photo_path_is_used_as_given_and_a_missing_one_named(no_colab, tmp_path):
    photo = tmp_path / "street.jpg"
    photo.write_bytes(b"jpeg")
    assert runtime.student_photo(str(photo), "local", tmp_path / "uploads") == photo
    with pytest.raises(runtime.StopNotebook, match=r"PHOTO = '.*nowhere\.jpg': no such file"):
        runtime.student_photo(tmp_path / "nowhere.jpg", "colab", tmp_path / "uploads")
    assert runtime.student_photo(None, "local", tmp_path / "uploads") is None  # the notebook shows its own scene
    assert not (tmp_path / "uploads").exists()


def test_colab_asks_for_an_upload_and_keeps_earlier_uploads_of_the_same_name(fake_colab, monkeypatch, tmp_path):
    files = types.ModuleType("google.colab.files")
    files.answers = [{"street.jpg": b"first"}, {"street.jpg": b"second"}, {}]
    files.upload = lambda: files.answers.pop(0)
    monkeypatch.setitem(sys.modules, "google.colab.files", files)
    first = runtime.student_photo(None, "colab", tmp_path / "uploads")
    second = runtime.student_photo(None, "colab", tmp_path / "uploads")
    assert (first.name, first.read_bytes()) == ("street.jpg", b"first")
    assert (second.name, second.read_bytes()) == ("street-1.jpg", b"second")
    assert runtime.student_photo(None, "colab", tmp_path / "uploads") is None  # the student cancelled

