"""The synthetic city: file format, exact labels behind the JPEGs, determinism, layout, regeneration."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, JpegImagePlugin

from pspnet_lib.data import (
    CLASS_NAMES,
    IGNORE_LABEL,
    DataError,
    default_synthetic_root,
    ensure_synthetic_dataset,
    list_pairs,
    read_pair,
    synthetic_label_ids,
    synthetic_pair,
    write_synthetic_dataset,
)

ROAD, SIDEWALK = CLASS_NAMES.index("road"), CLASS_NAMES.index("sidewalk")


def test_files_have_the_kaggle_format(synthetic_pairs, tmp_path) -> None:
    assert [p.name for p in list_pairs(synthetic_pairs / "train")] == [f"{i}.jpg" for i in range(1, 9)]
    assert len(list_pairs(synthetic_pairs / "val")) == 4
    with Image.open(synthetic_pairs / "val" / "1.jpg") as image:
        assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (512, 256))
        assert JpegImagePlugin.get_sampling(image) == 2  # 4:2:0 chroma subsampling, as in every Kaggle file
        tables = {k: list(v) for k, v in image.quantization.items()}
    reference = tmp_path / "q95.jpg"
    Image.new("RGB", (16, 16)).save(reference, format="JPEG", quality=95)
    with Image.open(reference) as image:
        assert tables == {k: list(v) for k, v in image.quantization.items()}  # the Kaggle files' tables


def test_decoded_jpeg_masks_match_the_generated_ids(synthetic_pairs) -> None:
    right = wrong = total = 0
    for split, count in (("train", 8), ("val", 4)):
        for index in range(1, count + 1):
            _, decoded = read_pair(synthetic_pairs / split / f"{index}.jpg")
            truth = synthetic_label_ids(synthetic_pairs, split, index)
            labelled = truth != IGNORE_LABEL
            right += int((decoded[labelled] == truth[labelled]).sum())
            wrong += int(((decoded != truth) & (decoded != IGNORE_LABEL) & labelled).sum())
            total += int(labelled.sum())
    assert right / total >= 0.965 and wrong / total <= 0.001


def test_generation_is_deterministic_per_seed_split_and_index() -> None:
    first, again = synthetic_pair(3, "train", 5), synthetic_pair(3, "train", 5)
    np.testing.assert_array_equal(first.image, again.image)
    np.testing.assert_array_equal(first.label_ids, again.label_ids)
    for other in (synthetic_pair(4, "train", 5), synthetic_pair(3, "val", 5), synthetic_pair(3, "train", 6)):
        assert not np.array_equal(first.label_ids, other.label_ids)


def test_class_frequencies_resemble_cityscapes() -> None:
    ids = np.stack([synthetic_pair(0, "train", i).label_ids for i in range(1, 9)])
    counts = np.bincount(ids[ids != IGNORE_LABEL], minlength=19) / (ids != IGNORE_LABEL).sum()
    assert counts.argmax() == ROAD and 0.25 < counts[ROAD] < 0.55
    for name in ("sidewalk", "building", "vegetation", "sky", "car", "pole", "person"):
        assert counts[CLASS_NAMES.index(name)] > 0.001, name
    assert 0.05 < (ids == IGNORE_LABEL).mean() < 0.3


def test_road_and_sidewalk_look_alike_and_sidewalk_lies_beside_the_road() -> None:
    for index in range(1, 6):
        pair = synthetic_pair(0, "val", index)
        photo = pair.image.astype(float)
        road, sidewalk = photo[pair.label_ids == ROAD], photo[pair.label_ids == SIDEWALK]
        assert np.abs(road.mean(0) - sidewalk.mean(0)).max() < 12
        assert abs(road.std() - sidewalk.std()) < 6
        rows, cols = np.nonzero(pair.label_ids == SIDEWALK)
        # In a row showing both, sidewalk is never inside the road's column span: it flanks the road.
        checked = 0
        for row in np.unique(rows):
            road_cols = np.flatnonzero(pair.label_ids[row] == ROAD)
            side_cols = cols[rows == row]
            if road_cols.size:
                checked += 1
                assert not ((side_cols > road_cols.min()) & (side_cols < road_cols.max())).any()
        assert checked > 10


def test_ensure_generates_once_and_repairs_an_incomplete_folder(tmp_path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "toy", num_train=2, num_val=1, seed=0)
    first = root / "train" / "2.jpg"
    stamp = first.stat().st_mtime_ns
    assert ensure_synthetic_dataset(root, num_train=2, num_val=1, seed=0) == root
    assert first.stat().st_mtime_ns == stamp
    first.unlink()
    ensure_synthetic_dataset(root, num_train=2, num_val=1, seed=0)
    assert first.is_file()


def test_a_folder_written_in_an_older_file_format_is_regenerated(tmp_path) -> None:
    root = ensure_synthetic_dataset(tmp_path / "toy", num_train=1, num_val=1, seed=0)
    marker = root / "synthetic.json"
    settings = json.loads(marker.read_text())
    assert settings.pop("format") >= 2
    marker.write_text(json.dumps(settings))  # as written before the format was recorded (quality 75, 4:4:4)
    pair = root / "val" / "1.jpg"
    Image.new("RGB", (512, 256)).save(pair, format="JPEG", quality=75, subsampling=0)
    ensure_synthetic_dataset(root, num_train=1, num_val=1, seed=0)
    with Image.open(pair) as image:
        assert JpegImagePlugin.get_sampling(image) == 2
    assert (read_pair(pair)[1] == synthetic_label_ids(root, "val", 1)).mean() > 0.9  # not the black stand-in


def test_regenerating_fewer_pairs_removes_the_extra_files(tmp_path) -> None:
    write_synthetic_dataset(tmp_path, num_train=3, num_val=1)
    write_synthetic_dataset(tmp_path, num_train=2, num_val=1)
    assert [p.name for p in list_pairs(tmp_path / "train")] == ["1.jpg", "2.jpg"]


def test_default_location_follows_the_data_dir(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PSPNET_DATA_DIR", str(tmp_path))
    assert default_synthetic_root() == tmp_path / "toy_cityscapes"


def test_bad_arguments_are_rejected(tmp_path) -> None:
    with pytest.raises(ValueError, match="num_train"):
        write_synthetic_dataset(tmp_path, num_train=0)
    with pytest.raises(ValueError, match="split"):
        synthetic_pair(0, "test", 1)
    with pytest.raises(DataError, match="synthetic"):
        synthetic_label_ids(tmp_path, "train", 1)


def _old_town_scenes(share: float, count: int = 16) -> list:
    """(pair, is_old_town) for the first `count` val pairs of a city with that pedestrian share."""
    from pspnet_lib.data.city import OLD_TOWN, random_district

    scenes = []
    for index in range(1, count + 1):
        district = random_district(np.random.default_rng([0, 1, index]), share)
        scenes.append((synthetic_pair(0, "val", index, pedestrian_share=share), district is OLD_TOWN))
    return scenes


def test_old_town_streets_are_all_sidewalk_without_cars_and_their_paving_looks_like_road() -> None:
    scenes = _old_town_scenes(0.5)
    old = [pair for pair, is_old in scenes if is_old]
    centre = [pair for pair, is_old in scenes if not is_old]
    assert 3 <= len(old) <= 13  # both districts occur
    car = CLASS_NAMES.index("car")
    for pair in old:
        assert not (pair.label_ids == ROAD).any() and not (pair.label_ids == car).any()
        assert (pair.label_ids == SIDEWALK).mean() > 0.25  # the whole paving
    for pair in centre:
        assert (pair.label_ids == ROAD).mean() > 0.15 and (pair.label_ids == car).any()
    old_paving = np.concatenate([p.image[p.label_ids == SIDEWALK] for p in old]).astype(float)
    centre_road = np.concatenate([p.image[p.label_ids == ROAD] for p in centre]).astype(float)
    assert np.abs(old_paving.mean(0) - centre_road.mean(0)).max() < 15  # same asphalt on average


def test_pedestrian_share_zero_is_the_default_city_and_bad_shares_are_named(tmp_path) -> None:
    for index in (1, 2):
        default, zero = synthetic_pair(0, "train", index), synthetic_pair(0, "train", index, pedestrian_share=0.0)
        np.testing.assert_array_equal(default.image, zero.image)
    assert all(is_old for _, is_old in _old_town_scenes(1.0, count=3))
    for share in (-0.1, 1.5, "half", True):
        with pytest.raises(ValueError, match="pedestrian_share"):
            synthetic_pair(0, "val", 1, pedestrian_share=share)
    with pytest.raises(ValueError, match="pedestrian_share"):
        ensure_synthetic_dataset(tmp_path, num_train=1, num_val=1, pedestrian_share=2)


def test_the_old_town_dataset_records_its_share_and_regenerates_when_it_changes(tmp_path, monkeypatch) -> None:
    root = ensure_synthetic_dataset(tmp_path / "city", num_train=1, num_val=2, pedestrian_share=1.0)
    truth = synthetic_label_ids(root, "val", 2)
    assert not (truth == ROAD).any()  # the marker's share is used to regenerate the labels
    decoded = read_pair(root / "val" / "2.jpg")[1]
    assert ((decoded == SIDEWALK) == (truth == SIDEWALK)).mean() > 0.97  # the file holds that city
    ensure_synthetic_dataset(root, num_train=1, num_val=2, pedestrian_share=0.0)
    assert (synthetic_label_ids(root, "val", 2) == ROAD).any()
    monkeypatch.setenv("PSPNET_DATA_DIR", str(tmp_path))
    assert default_synthetic_root(0.5) == tmp_path / "toy_cityscapes_old_town_50"
