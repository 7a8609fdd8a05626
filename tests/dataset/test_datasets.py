import os

import pytest

from embedding_transfer.dataset import DATASETS, build_dataset, build_transform
from embedding_transfer.errors import UserError


def folder_class(path):
    return int(os.path.basename(os.path.dirname(path))[:3])  # "001.Species_1" -> 1


@pytest.mark.parametrize("mode, first", [("train", 1), ("eval", 101)])
def test_cub_split_counts_labels(cub_dir, layout, mode, first):
    ds = build_dataset("cub", str(cub_dir), mode, None)
    classes = range(first, first + 100)
    assert len(ds) == sum(layout.cub_images_per_class(i) for i in classes)
    assert ds.nb_classes() == 100 and min(ds.ys) == 0 and max(ds.ys) == 99
    assert not any(os.path.basename(p).startswith("._") for p in ds.im_paths)
    for p, y in zip(ds.im_paths, ds.ys):
        assert folder_class(p) - first == y  # sorted folder order, split at class 100


def test_cub_wrong_class_count(cub_dir):
    os.rename(cub_dir / "CUB_200_2011/images/200.Species_200", cub_dir / "spare")
    with pytest.raises(UserError, match="199 class folders"):
        build_dataset("cub", str(cub_dir), "train", None)


@pytest.mark.parametrize("mode, offset", [("train", 0), ("eval", 98)])
def test_cars_split_counts_labels(cars_dir, layout, mode, offset):
    ds = build_dataset("cars", str(cars_dir), mode, None)
    expected = [(k, c - 1 - offset) for k, c in enumerate(layout.cars_classes, start=1)
                if 0 <= c - 1 - offset < 98]
    assert len(ds) == len(expected)
    assert ds.ys == [y for _, y in expected]
    assert ds.im_paths == [os.path.join(str(cars_dir), "cars196", f"car_ims/{k:06d}.jpg")
                           for k, _ in expected]
    assert ds.nb_classes() == 98 and min(ds.ys) == 0 and max(ds.ys) == 97


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sop_split_counts_labels(sop_dir, layout, mode):
    spec = layout.sop[mode]
    ds = build_dataset("SOP", str(sop_dir), mode, None)
    assert len(ds) == sum(spec.values())
    # class ids are global in the files (test ids follow train ids): remapped to 0..C-1
    assert ds.ys == [i for i, n in enumerate(spec.values()) for _ in range(n)]
    assert all(os.path.isfile(p) for p in ds.im_paths)
    root = os.path.join(str(sop_dir), "Stanford_Online_Products")
    assert all(os.path.dirname(os.path.dirname(p)) == root for p in ds.im_paths)


def test_getitem_returns_image_label_index(sop_dir):
    ds = build_dataset("SOP", str(sop_dir), "eval", build_transform("resnet50", train=False))
    x, y, i = ds[3]
    assert x.shape == (3, 224, 224) and y == ds.ys[3] and i == 3


@pytest.mark.parametrize("name, folder, url", [
    ("cub", "CUB_200_2011/images", "https://www.vision.caltech.edu/datasets/cub_200_2011/"),
    ("cars", "cars196", "http://ai.stanford.edu/~jkrause/cars/car_dataset.html"),
    ("SOP", "Stanford_Online_Products", "https://cvgl.stanford.edu/projects/lifted_struct/"),
])
def test_missing_dataset_names_path_and_url(tmp_path, name, folder, url):
    with pytest.raises(UserError) as e:
        build_dataset(name, str(tmp_path), "train", None)
    assert str(tmp_path / folder) in str(e.value) and url in str(e.value)


def test_missing_cars_annotations(cars_dir):
    os.remove(cars_dir / "cars196/cars_annos.mat")
    with pytest.raises(UserError, match="cars_annos.mat") as e:
        build_dataset("cars", str(cars_dir), "eval", None)
    assert "jkrause/cars" in str(e.value)


def test_missing_sop_list(sop_dir, layout):
    os.remove(sop_dir / "Stanford_Online_Products/Ebay_test.txt")
    ds = build_dataset("SOP", str(sop_dir), "train", None)  # the other split still loads
    assert len(ds) == sum(layout.sop['train'].values())
    with pytest.raises(UserError, match="Ebay_test.txt") as e:
        build_dataset("SOP", str(sop_dir), "eval", None)
    assert "lifted_struct" in str(e.value)


def test_listed_image_missing_fails_at_construction(cars_dir, sop_dir):
    os.remove(cars_dir / "cars196/car_ims/000002.jpg")
    with pytest.raises(UserError, match="000002.jpg"):
        build_dataset("cars", str(cars_dir), "train", None)
    os.remove(sop_dir / "Stanford_Online_Products/cabinet_final/111085122801_2.JPG")
    with pytest.raises(UserError, match="111085122801_2.JPG"):
        build_dataset("SOP", str(sop_dir), "train", None)


def test_corrupt_image_names_file(cub_dir):
    ds = build_dataset("cub", str(cub_dir), "train", build_transform("bn_inception", train=True))
    with open(ds.im_paths[5], "wb") as f:
        f.write(b"not a jpeg")
    assert ds[4][0].shape == (3, 224, 224)
    with pytest.raises(UserError, match=os.path.basename(ds.im_paths[5])):
        ds[5]


def test_unknown_dataset_lists_valid_names(tmp_path):
    with pytest.raises(UserError) as e:
        build_dataset("CUB", str(tmp_path), "train", None)
    assert all(n in str(e.value) for n in ("cub", "cars", "SOP"))
    assert set(DATASETS) >= {"cub", "cars", "SOP"}
    with pytest.raises(UserError, match="'train' or 'eval'"):
        build_dataset("cub", str(tmp_path), "test", None)
