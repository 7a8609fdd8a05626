"""Cars-196 from its three on-disk layouts (cars_layouts.py): the same images, class ids and split from
each. The fixtures write the same 250 images into every layout, each image's size encoding its number
in the reference's car_ims/, so that a file of any layout can be traced back to its annotation."""
import importlib.util
import os
import shutil

import pytest

from embedding_transfer.dataset import build_dataset
from embedding_transfer.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OFFSET = {"train": 0, "eval": 98}


def expected(layout, mode):
    """image id -> label, from the annotations alone: classes 1-98 train, 99-196 eval."""
    labels = {k: c - 1 - OFFSET[mode] for k, c in enumerate(layout.cars_classes, start=1)}
    return {k: y for k, y in labels.items() if 0 <= y < 98}


def by_id(ds, layout):
    ids = [layout.cars_image_id(p) for p in ds.im_paths]
    assert len(set(ids)) == len(ids), "an image was read twice"
    return dict(zip(ids, ds.ys))


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_three_layouts_give_the_same_split(cars_layouts, layout, mode):
    got = {}
    for kind in ("annos", "devkit", "folders"):
        ds = build_dataset("cars", str(cars_layouts(kind)), mode, None)
        assert ds.layout == kind
        assert ds.nb_classes() == 98 and sorted(set(ds.ys)) == list(range(98))
        got[kind] = by_id(ds, layout)
    assert got["annos"] == expected(layout, mode)
    assert got["devkit"] == got["annos"] and got["folders"] == got["annos"]


def test_folder_names_do_not_sort_in_class_order(cars_layouts, layout):
    """The miniature must exercise the trap: sorted folder names are not the class order; they even
    swap the last train class and the first eval class."""
    names = [n.replace("/", "-") for n in layout.cars_class_names]
    folders = os.listdir(os.path.join(str(cars_layouts("folders")), "cars196", "train"))
    assert sorted(folders) != sorted(folders, key=names.index)
    assert sorted(names).index(names[98]) < sorted(names).index(names[97])


@pytest.mark.parametrize("kind", ["devkit", "folders"])
def test_order_is_by_class_then_file_name(cars_layouts, layout, kind):
    ds = build_dataset("cars", str(cars_layouts(kind)), "train", None)
    keys = [(y, os.path.basename(p)) for p, y in zip(ds.im_paths, ds.ys)]
    assert keys == sorted(keys)
    if kind == "folders":  # files named by car_ims number: the reference's order within each class
        ids = [(y, layout.cars_image_id(p)) for p, y in zip(ds.im_paths, ds.ys)]
        assert ids == sorted(ids)


@pytest.mark.parametrize("options", [{"nested": True}, {"labels_at": "devkit"}, {"labels_at": ""},
                                     {"root": "cars196/stanford_cars"}])
def test_devkit_variants(cars_layouts, layout, options):
    data = cars_layouts("devkit", **options)
    ds = build_dataset("cars", str(data), "eval", None)
    assert ds.layout == "devkit" and by_id(ds, layout) == expected(layout, "eval")
    if options.get("nested"):
        assert all(os.path.basename(os.path.dirname(os.path.dirname(p))) == os.path.basename(os.path.dirname(p))
                   for p in ds.im_paths)
    if "root" in options:
        assert ds.layout_root == os.path.join(str(data), options["root"])


@pytest.mark.parametrize("options", [{"slash": "_"}, {"slash": ""}, {"meta_at": ""},
                                     {"root": "cars196/Stanford-Cars-dataset"}])
def test_folder_variants(cars_layouts, layout, options):
    ds = build_dataset("cars", str(cars_layouts("folders", **options)), "train", None)
    assert ds.layout == "folders" and by_id(ds, layout) == expected(layout, "train")
    ram = layout.cars_class_names.index("Ram C/V Cargo Van Minivan 2012")
    assert any(y == ram for y in ds.ys)


def test_folders_take_class_names_from_cars_annos(cars_layouts, layout):
    """Without cars_meta.mat the `class_names` of cars_annos.mat give the order (car_ims/ absent)."""
    data = cars_layouts("folders", meta_at=None)
    shutil.copy(cars_layouts("annos") / "cars196" / "cars_annos.mat", data / "cars196")
    ds = build_dataset("cars", str(data), "eval", None)
    assert ds.layout == "folders" and by_id(ds, layout) == expected(layout, "eval")


def test_folders_without_class_order_fail(cars_layouts):
    data = cars_layouts("folders", meta_at=None)
    with pytest.raises(UserError) as e:
        build_dataset("cars", str(data), "train", None)
    msg = str(e.value)
    assert "cars_meta.mat" in msg and os.path.join(str(data), "cars196", "devkit") in msg
    assert "class-folder layout" in msg and "\n" not in msg


def test_missing_test_labels_named(cars_layouts):
    with pytest.raises(UserError) as e:
        build_dataset("cars", str(cars_layouts("devkit", labels_at=None)), "train", None)
    msg = str(e.value)
    assert "cars_test_annos_withlabels.mat" in msg and "classification layout" in msg
    assert "vision/issues/7545" in msg


def test_reference_layout_preferred(cars_layouts, layout):
    data = cars_layouts("devkit", name="both")
    cars_layouts("annos", name="both")
    ds = build_dataset("cars", str(data), "eval", None)
    assert ds.layout == "annos" and "car_ims" in ds.im_paths[0]
    shutil.rmtree(data / "cars196" / "car_ims")
    ds = build_dataset("cars", str(data), "eval", None)
    assert ds.layout == "devkit" and by_id(ds, layout) == expected(layout, "eval")


def test_no_layout_names_all_and_what_the_closest_lacks(cars_layouts, tmp_path):
    os.makedirs(tmp_path / "empty" / "cars196")
    with pytest.raises(UserError) as e:
        build_dataset("cars", str(tmp_path / "empty"), "train", None)
    msg = str(e.value)
    assert all(w in msg for w in ("reference's layout", "classification layout", "class-folder layout"))
    data = cars_layouts("devkit")
    shutil.rmtree(data / "cars196" / "cars_test")
    with pytest.raises(UserError, match=r"Closest: the classification layout .* lacks cars_test/\. "):
        build_dataset("cars", str(data), "train", None)


def test_devkit_image_listed_but_missing(cars_layouts):
    data = cars_layouts("devkit")
    os.remove(data / "cars196" / "cars_train" / "00003.jpg")
    errors = []
    for mode in ("train", "eval"):  # the image's class decides which split notices
        try:
            build_dataset("cars", str(data), mode, None)
        except UserError as e:
            errors.append(str(e))
    assert len(errors) == 1
    assert "00003.jpg" in errors[0] and os.path.join("devkit", "cars_train_annos.mat") in errors[0]


def test_unknown_class_folder(cars_layouts):
    data = cars_layouts("folders")
    os.makedirs(data / "cars196" / "train" / "Nonexistent Car 1999")
    with pytest.raises(UserError, match="Nonexistent Car 1999.*matches no class name"):
        build_dataset("cars", str(data), "train", None)


def test_missing_class_folder(cars_layouts, layout):
    data = cars_layouts("folders")
    name = layout.cars_class_names[150]
    for split in ("train", "test"):
        shutil.rmtree(data / "cars196" / split / name, ignore_errors=True)
    with pytest.raises(UserError, match=f"hold 195 of the 196 classes.*{name}"):
        build_dataset("cars", str(data), "train", None)


def load_verify_data():
    spec = importlib.util.spec_from_file_location("verify_data", os.path.join(ROOT, "scripts", "verify_data.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("kind, words", [("annos", "reference's layout"), ("devkit", "classification layout"),
                                         ("folders", "class-folder layout")])
def test_verify_data_reports_layout(cars_layouts, capsys, kind, words):
    data = cars_layouts(kind)
    assert load_verify_data().main(["--DATA_DIR", str(data), "cars"]) == 1  # 250 images, not 16,185
    out = capsys.readouterr().out
    assert f"cars: found the {words}" in out and os.path.join(str(data), "cars196") in out
    assert "cars train: " in out and "(expected 8054 images, 98 classes)" in out


def test_verify_data_says_what_is_missing(cars_layouts, capsys):
    data = cars_layouts("devkit", labels_at=None)
    assert load_verify_data().main(["--DATA_DIR", str(data), "cars"]) == 1
    out = capsys.readouterr().out
    assert "cars_test_annos_withlabels.mat" in out and "Closest: the classification layout" in out


def test_verify_data_without_names_checks_every_data_set_present(cub_dir, sop_dir, capsys):
    """README's `python scripts/verify_data.py`, no names: the data sets found, and only those."""
    assert load_verify_data().main(["--DATA_DIR", str(cub_dir)]) == 1   # tiny trees, not the real counts
    out = capsys.readouterr().out
    assert "cub train: " in out and "SOP train: " in out
    assert "cars" not in out and "Inshop" not in out


def test_verify_data_without_names_and_without_data_says_where_it_looked(tmp_path, capsys):
    assert load_verify_data().main(["--DATA_DIR", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert f"no data set found under {tmp_path}" in out and "CUB_200_2011" in out


def test_verify_data_refuses_an_unknown_name(capsys):
    with pytest.raises(SystemExit) as e:
        load_verify_data().main(["cub", "imagenet"])
    assert e.value.code == 2 and "unknown data set(s) imagenet; valid: cub, cars, SOP, Inshop" in capsys.readouterr().err
