"""Shared fixtures. Tiny copies of the three archives, in their real layouts, written into tmp_path
(the dataset tests and the end-to-end tests of the entry points use them)."""
import os
import sys
import types

import numpy as np
import PIL.Image
import pytest
import scipy.io

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "code"))


def write_jpeg(path, color=(120, 60, 30), size=(12, 9)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    PIL.Image.new("RGB", size, color).save(path, "JPEG")


def cub_images_per_class(i):
    # 1-based class number -> image count: uneven so that wrong splits change the counts.
    return 1 + (i % 3 == 0)


def make_cub(tmp_path):
    """DATA_DIR with CUB_200_2011/images/NNN.Species_N/*.jpg (200 classes) plus `._` junk."""
    images = tmp_path / "CUB_200_2011" / "images"
    for i in reversed(range(1, 201)):  # creation order must not matter
        folder = images / f"{i:03d}.Species_{i}"
        for j in range(cub_images_per_class(i)):
            # Colours differ by class (and a little by image) so that embeddings differ.
            write_jpeg(str(folder / f"Species_{i}_{j + 1:04d}_{700000 + 10 * i + j}.jpg"),
                       color=(i * 37 % 256, i * 91 % 256, 40 * j))
        # AppleDouble junk found in some copies of the archive: must be skipped.
        (folder / f"._Species_{i}_0001_{700000 + 10 * i}.jpg").write_bytes(b"\x00\x05\x16\x07junk")
    (tmp_path / "CUB_200_2011" / "README").write_text("readme")
    return tmp_path


@pytest.fixture
def cub_dir(tmp_path):
    return make_cub(tmp_path)


def cars_classes():
    # 250 annotations: image k (1-based) has class ((k - 1) % 196) + 1, so classes 1-54 twice.
    return [((k - 1) % 196) + 1 for k in range(1, 251)]


def make_cars(tmp_path):
    """DATA_DIR with cars196/cars_annos.mat (struct array as in the real file) + car_ims/."""
    root = tmp_path / "cars196"
    classes = cars_classes()
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    annos = np.zeros((1, len(classes)), dtype=[(f, "O") for f in fields])
    for k, c in enumerate(classes, start=1):
        path = f"car_ims/{k:06d}.jpg"
        write_jpeg(str(root / path))
        box = [np.array([[v]], dtype=np.uint16) for v in (1, 2, 10, 8)]
        annos[0, k - 1] = (path, *box, np.array([[c]], dtype=np.uint8),
                           np.array([[k % 2]], dtype=np.uint8))
    names = np.array([[f"Make Model {c}" for c in range(1, 197)]], dtype=object)
    scipy.io.savemat(str(root / "cars_annos.mat"), {"annotations": annos, "class_names": names})
    return tmp_path


@pytest.fixture
def cars_dir(tmp_path):
    return make_cars(tmp_path)


SOP_TRAIN = {1: 3, 2: 1, 3: 2, 4: 2, 5: 1}  # class_id -> number of images
SOP_TEST = {6: 2, 7: 1, 8: 3, 9: 2}


def make_sop(tmp_path):
    """DATA_DIR with Stanford_Online_Products/Ebay_{train,test}.txt and <super>_final/ images."""
    root = tmp_path / "Stanford_Online_Products"
    image_id = 1
    for name, spec in (("Ebay_train.txt", SOP_TRAIN), ("Ebay_test.txt", SOP_TEST)):
        lines = ["image_id class_id super_class_id path"]
        for class_id, n in spec.items():
            super_id = 1 + class_id % 2
            folder = ["bicycle_final", "cabinet_final"][super_id - 1]
            for j in range(n):
                path = f"{folder}/{111085122800 + class_id}_{j}.JPG"
                write_jpeg(str(root / path))
                lines.append(f"{image_id} {class_id} {super_id} {path}")
                image_id += 1
        (root / name).write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.fixture
def sop_dir(tmp_path):
    return make_sop(tmp_path)


@pytest.fixture
def layout():
    """The trees' contents for the tests' expectations (conftest is not importable under
    --import-mode=importlib)."""
    return types.SimpleNamespace(cub_images_per_class=cub_images_per_class,
                                 cars_classes=cars_classes(),
                                 sop={"train": SOP_TRAIN, "eval": SOP_TEST})


# End-to-end fixtures: one tiny CUB tree and one source network trained on it, shared by the
# tests of train_source.py, train_target.py and evaluate.py.
TINY = ["--model", "resnet_narrow", "--random-init", "--crop-size", "32", "--workers", "0",
        "--wandb", "disabled", "--epochs", "1"]


@pytest.fixture(scope="session")
def tiny_flags():
    """Flags that make a run of the entry points take seconds on a CPU."""
    return list(TINY)


@pytest.fixture(scope="session")
def tiny_cub(tmp_path_factory):
    return make_cub(tmp_path_factory.mktemp("cub"))


@pytest.fixture(scope="session")
def source_ckpt(tiny_cub, tmp_path_factory):
    """A 32-d resnet_narrow source trained one epoch with Proxy-Anchor on the tiny CUB tree."""
    import train_source
    out = tmp_path_factory.mktemp("source")
    args = train_source.get_args_parser().parse_args(
        TINY + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--embedding-size", "32", "--batch-size", "12",
                "--IPC", "2", "--LOG_DIR", str(out / "logs"), "--save-dir", str(out / "pretrained_source")])
    train_source.main(args)
    return str(out / "pretrained_source" / "resnet_narrow" / "cub_resnet_narrow_32dim_Proxy_Anchor_ckpt.pth")
