"""Pair files, dataset folders and the real-data search: every bad input gives a DataError naming it."""

from __future__ import annotations

import shutil
import socket
import threading
from pathlib import Path

import kagglehub
import numpy as np
import pytest
import requests
from PIL import Image

from pspnet_lib.data import (
    CredentialsRejected,
    DataError,
    default_dataset,
    download_cityscapes_pairs,
    find_cityscapes_pairs,
    how_to_get,
    kaggle_reachable,
    list_pairs,
    locate,
    read_pair,
    resolve_dataset_dirs,
    usable_pairs,
    validate_pair_file,
)


def copy_dataset(source: Path, target: Path) -> Path:
    """A private copy of a dataset folder that a test may damage."""
    shutil.copytree(source, target)
    return target


def make_split_folders(root: Path) -> Path:
    """Empty train/ and val/ folders under `root`; returns `root`."""
    for split in ("train", "val"):
        (root / split).mkdir(parents=True)
    return root


@pytest.fixture
def isolated_search(monkeypatch, tmp_path) -> Path:
    """No real dataset anywhere: data dir, kagglehub cache and /kaggle/input all point into an empty tmp folder."""
    monkeypatch.delenv(locate.PAIRS_DIR_ENV, raising=False)
    monkeypatch.setenv("PSPNET_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv(locate.KAGGLEHUB_CACHE_ENV, str(tmp_path / "kagglehub"))
    monkeypatch.setattr(locate, "KAGGLE_INPUT_DIR", tmp_path / "kaggle_input")
    return tmp_path


def test_pairs_are_listed_in_numeric_order(tmp_path) -> None:
    for name in ("10.jpg", "2.jpg", "1.jpg", "notes.txt", "b.jpg", "a.JPG"):
        (tmp_path / name).touch()
    assert [p.name for p in list_pairs(tmp_path)] == ["1.jpg", "2.jpg", "10.jpg", "a.JPG", "b.jpg"]


def test_read_pair_splits_photo_and_label(synthetic_pairs) -> None:
    path = synthetic_pairs / "train" / "1.jpg"
    image, label = read_pair(path)
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8
    assert label.shape == (256, 256) and label.dtype == np.uint8
    np.testing.assert_array_equal(image, np.asarray(Image.open(path))[:, :256])


@pytest.mark.parametrize(
    ("make_file", "message"),
    [
        (lambda p: p.write_text("not a picture"), "not an image"),
        (lambda p: p.write_bytes(p.with_name("good.jpg").read_bytes()[:5000]), "truncated"),
        (lambda p: Image.new("L", (512, 256), 128).save(p, format="JPEG"), "grayscale"),
        (lambda p: Image.new("RGB", (300, 256)).save(p, format="JPEG"), "not 2:1"),
    ],
    ids=["not-an-image", "truncated-jpeg", "grayscale", "not-2-to-1"],
)
def test_bad_pair_files_are_named_with_their_problem(synthetic_pairs, tmp_path, make_file, message) -> None:
    shutil.copy(synthetic_pairs / "train" / "1.jpg", tmp_path / "good.jpg")
    bad = tmp_path / "bad.jpg"
    make_file(bad)
    for full_decode in (True, False):
        with pytest.raises(DataError, match=message) as caught:
            validate_pair_file(bad, full_decode=full_decode)
        assert str(bad) in str(caught.value)
    with pytest.raises(DataError, match=message):
        read_pair(bad)
    validate_pair_file(tmp_path / "good.jpg")


def test_all_bad_files_of_a_split_are_reported_together_or_skipped_with_a_warning(
    synthetic_pairs, tmp_path
) -> None:
    root = copy_dataset(synthetic_pairs, tmp_path / "copy")
    (root / "train" / "3.jpg").write_text("garbage")
    (root / "train" / "7.jpg").write_bytes((root / "train" / "7.jpg").read_bytes()[:3000])
    paths = list_pairs(root / "train")
    with pytest.raises(DataError, match="2 of 8") as caught:
        usable_pairs(paths)
    assert "3.jpg" in str(caught.value) and "7.jpg" in str(caught.value)
    with pytest.warns(UserWarning, match="Skipping 2") as warned:
        good = usable_pairs(paths, skip_bad=True)
    assert "3.jpg" in str(warned[0].message) and "7.jpg" in str(warned[0].message)
    assert [p.name for p in good] == ["1.jpg", "2.jpg", "4.jpg", "5.jpg", "6.jpg", "8.jpg"]


@pytest.mark.parametrize("nesting", ["", "cityscapes_data", "cityscapes_data/cityscapes_data"])
def test_resolver_accepts_the_known_nestings(tmp_path, nesting) -> None:
    inner = make_split_folders(tmp_path / nesting if nesting else tmp_path)
    dirs = resolve_dataset_dirs(tmp_path)
    assert (dirs.root, dirs.train, dirs.val) == (inner, inner / "train", inner / "val")
    assert dirs.split("val") == inner / "val"


def test_resolver_explains_missing_empty_and_wrongly_nested_folders(tmp_path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        resolve_dataset_dirs(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty"):
        resolve_dataset_dirs(tmp_path / "empty")
    make_split_folders(tmp_path / "wrong" / "images")
    with pytest.raises(DataError, match="wrong layout: found images/") as caught:
        resolve_dataset_dirs(tmp_path / "wrong")
    assert f"train/ and val/ are in {tmp_path / 'wrong' / 'images'}" in str(caught.value)
    (tmp_path / "only_train" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="found train/; expected"):
        resolve_dataset_dirs(tmp_path / "only_train")


def test_resolver_recognises_a_split_folder_given_by_mistake(synthetic_pairs) -> None:
    with pytest.raises(DataError, match="looks like a split folder") as caught:
        resolve_dataset_dirs(synthetic_pairs / "train")
    assert str(synthetic_pairs) in str(caught.value)


def test_find_uses_the_environment_variable_first(isolated_search, monkeypatch) -> None:
    make_split_folders(isolated_search / "data" / "cityscapes_data")
    chosen = make_split_folders(isolated_search / "mine" / "cityscapes_data")
    monkeypatch.setenv(locate.PAIRS_DIR_ENV, str(isolated_search / "mine"))
    assert find_cityscapes_pairs() == chosen
    monkeypatch.setenv(locate.PAIRS_DIR_ENV, str(isolated_search / "typo"))
    with pytest.raises(DataError, match="CITYSCAPES_PAIRS_DIR"):
        find_cityscapes_pairs()


def test_find_searches_data_dir_kagglehub_cache_and_kaggle_input(isolated_search, monkeypatch) -> None:
    assert find_cityscapes_pairs() is None
    kaggle_input = make_split_folders(isolated_search / "kaggle_input" / "cityscapes_data")
    assert find_cityscapes_pairs() == kaggle_input
    versions = (
        isolated_search / "kagglehub" / "datasets" / "dansbecker" / "cityscapes-image-pairs" / "versions"
    )
    make_split_folders(versions / "1" / "cityscapes_data")
    newest = make_split_folders(versions / "2" / "cityscapes_data" / "cityscapes_data")
    assert find_cityscapes_pairs() == newest
    in_data_dir = make_split_folders(isolated_search / "data" / "cityscapes_data")
    assert find_cityscapes_pairs() == in_data_dir


def test_default_dataset_prefers_real_pairs_and_says_which_in_one_line(isolated_search, capsys) -> None:
    synthetic = default_dataset(isolated_search / "toy", num_train=2, num_val=1)
    assert synthetic == isolated_search / "toy" and len(list_pairs(synthetic / "train")) == 2
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "synthetic" in out
    real = make_split_folders(isolated_search / "data" / "cityscapes_data")
    assert default_dataset(isolated_search / "toy") == real
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "real" in out and str(real) in out


def test_offline_download_fails_fast_with_a_clear_message(monkeypatch) -> None:
    def offline(handle, **kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'www.kaggle.com'")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    with pytest.raises(DataError, match="could not download .*ConnectionError.*kaggle.com/datasets"):
        download_cityscapes_pairs(timeout=30)


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_credentials_are_told_apart_from_network_trouble(monkeypatch, status) -> None:
    def rejected(handle, **kwargs):
        response = requests.Response()
        response.status_code = status
        raise requests.exceptions.HTTPError(f"{status} Client Error: Unauthorized", response=response)

    monkeypatch.setattr(kagglehub, "dataset_download", rejected)
    with pytest.raises(CredentialsRejected, match=f"Kaggle rejected the credentials .*HTTPError: {status} Client"):
        download_cityscapes_pairs(timeout=30)


def test_kagglehubs_unauthenticated_error_means_rejected_credentials(monkeypatch) -> None:
    from kagglehub.exceptions import UnauthenticatedError

    def rejected(handle, **kwargs):
        raise UnauthenticatedError()

    monkeypatch.setattr(kagglehub, "dataset_download", rejected)
    with pytest.raises(CredentialsRejected, match="UnauthenticatedError"):
        download_cityscapes_pairs(timeout=30)


@pytest.mark.timeout(30)
def test_hanging_download_gives_up_at_the_time_out(monkeypatch) -> None:
    release = threading.Event()  # the fake download hangs until released (or for 60 s)
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle, **kwargs: release.wait(60))
    try:
        with pytest.raises(DataError, match="did not finish within 0.3 s"):
            download_cityscapes_pairs(timeout=0.3)
    finally:
        release.set()


def test_successful_download_returns_the_resolved_dataset_folder(monkeypatch, tmp_path) -> None:
    inner = make_split_folders(tmp_path / "cityscapes_data")
    requested = {}

    def fake_download(handle, **kwargs):
        requested.update(handle=handle, **kwargs)
        return str(tmp_path)

    monkeypatch.setattr(kagglehub, "dataset_download", fake_download)
    assert download_cityscapes_pairs(timeout=5, output_dir=tmp_path) == inner
    assert requested == {"handle": "dansbecker/cityscapes-image-pairs", "output_dir": str(tmp_path)}


class FakeConnection:
    """Stands in for a connected socket; remembers being closed."""

    closed = False

    def close(self) -> None:
        self.closed = True


def test_kaggle_reachable_when_kaggle_accepts_the_connection(monkeypatch) -> None:
    calls, connection = [], FakeConnection()

    def accept(address, timeout=None):
        calls.append((address, timeout))
        return connection

    monkeypatch.setattr(socket, "create_connection", accept)
    assert kaggle_reachable(timeout=1.5) is True
    assert calls == [(("www.kaggle.com", 443), 1.5)] and connection.closed


@pytest.mark.parametrize(
    "failure",
    [
        socket.gaierror(-3, "Temporary failure in name resolution"),
        ConnectionRefusedError(111, "refused"),
        TimeoutError("timed out"),
    ],
)
def test_kaggle_unreachable_when_the_lookup_or_connection_fails(monkeypatch, failure) -> None:
    def fail(address, timeout=None):
        raise failure

    monkeypatch.setattr(socket, "create_connection", fail)
    assert kaggle_reachable() is False


@pytest.mark.timeout(30)
def test_kaggle_reachable_gives_up_when_nothing_answers(monkeypatch) -> None:
    release = threading.Event()  # the fake lookup hangs (as a dead DNS server does) until released

    def hang(address, timeout=None):
        release.wait(60)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(socket, "create_connection", hang)
    try:
        assert kaggle_reachable(timeout=0.3) is False
    finally:
        release.set()


@pytest.mark.timeout(30)
def test_kaggle_reachable_is_false_for_a_name_that_never_resolves(monkeypatch) -> None:
    # A real lookup: the .invalid top-level domain is reserved (RFC 2606), online or offline.
    monkeypatch.setattr(locate, "KAGGLE_ADDRESS", ("www.kaggle.invalid", 443))
    assert kaggle_reachable(timeout=5) is False


def test_kaggle_reachable_rejects_a_non_positive_timeout() -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds, got 0"):
        kaggle_reachable(timeout=0)


def test_how_to_get_names_the_kaggle_page_the_synthetic_city_and_optionally_the_command() -> None:
    assert "https://www.kaggle.com/datasets/dansbecker/cityscapes-image-pairs" in how_to_get()
    assert "python -m pspnet_lib data toy" in how_to_get()
    assert "data kaggle" in how_to_get() and "data kaggle" not in how_to_get(offer_download_command=False)


def test_paths_inside_the_course_are_shown_relative_and_others_as_they_are(monkeypatch, tmp_path) -> None:
    from pspnet_lib.config import PROJECT_ROOT
    from pspnet_lib.data.locate import shown_path

    monkeypatch.chdir(PROJECT_ROOT / "notebooks")  # where a notebook runs
    assert shown_path(PROJECT_ROOT / "data" / "toy_cityscapes") == "../data/toy_cityscapes"
    monkeypatch.chdir(tmp_path)  # a folder beside something outside the course: never made relative
    outside = tmp_path.parent / "elsewhere" / "cityscapes_data"
    assert shown_path(outside) == str(outside)
