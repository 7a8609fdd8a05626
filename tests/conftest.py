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

# Under pytest-xdist (`make test` runs two workers on two cores) each worker and the processes its
# tests start compute on one thread: two workers of two threads each would fight over the cores.
# Set before any test imports torch.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"


# Tests that train or run the entry points (seconds to minutes each) are marked `e2e`: `make
# test-fast` leaves them out, `make test` (CI) runs everything. A test is e2e when it uses the
# end-to-end fixtures below, or says so with @pytest.mark.e2e.
E2E_FIXTURES = {"tiny_flags", "source_ckpt"}


# The longest files (minutes each), started first so that two workers end together instead of
# one of them starting a long file when the other has nothing left (longest first); measured table
# in docs/code.md.
LONGEST_FIRST = ["test_ddp_steps.py", "test_mini_reproduction.py", "test_demo.py", "test_gpu_check.py",
                 "test_experiments.py", "test_regime_ladder.py",
                 "test_distributed.py", "test_export.py", "test_resume.py"]


def pytest_collection_modifyitems(items):
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))   # stable: the rest keep their order


@pytest.fixture(autouse=True, scope="session")
def image_check_cache(tmp_path_factory):
    """The remembered image checks of the tests' trees go in a temporary folder, not ~/.cache."""
    old = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = old


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


def cars_class_names():
    """196 made-up names in class order. As with the real names, sorted names are not in class order
    (the makes cycle out of alphabetical order, so classes 98 and 99 sort the other way round); one
    name holds a '/' (a folder cannot) and one starts lower-case."""
    makes = ["Zeta", "Alpha", "Mu", "Beta", "Kappa", "Delta", "Omega"]
    names = [f"{makes[c % 7]} Model {c} 2012" for c in range(1, 197)]
    names[4] = "Ram C/V Cargo Van Minivan 2012"
    names[195] = "smart fortwo Convertible 2012"
    return names


def cars_image_size(k):
    # Image k's size encodes k exactly (JPEG colours are not exact), so that the tests can tell which
    # image a file of any layout is.
    return (16 + k % 64, 16 + k // 64)


def cars_image_id(path):
    with PIL.Image.open(path) as im:
        w, h = im.size
    return (h - 16) * 64 + (w - 16)


def write_car(path, k, encode_ids):
    if encode_ids:
        write_jpeg(str(path), color=(k * 37 % 256, k * 91 % 256, 90), size=cars_image_size(k))
    else:
        write_jpeg(str(path))


def cars_mat(path, fields, rows, **extra):
    """A .mat file with an `annotations` struct array (1 x n, one 2-D array per field, as MATLAB writes)."""
    annos = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
    for i, row in enumerate(rows):
        annos[0, i] = tuple(v if isinstance(v, str) else np.array([[v]], dtype=np.uint16) for v in row)
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    scipy.io.savemat(str(path), {"annotations": annos, **extra})


def cars_meta(path):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    scipy.io.savemat(str(path), {"class_names": np.array([cars_class_names()], dtype=object)})


def make_cars(tmp_path, root="cars196", encode_ids=False):
    """DATA_DIR with cars196/cars_annos.mat (struct array as in the real file) + car_ims/."""
    base = tmp_path / root
    rows = []
    for k, c in enumerate(cars_classes(), start=1):
        path = f"car_ims/{k:06d}.jpg"
        write_car(base / path, k, encode_ids)
        rows.append((path, 1, 2, 10, 8, c, k % 2))
    fields = ["relative_im_path", "bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "test"]
    cars_mat(base / "cars_annos.mat", fields, rows, class_names=np.array([cars_class_names()], dtype=object))
    return tmp_path


def make_cars_devkit(tmp_path, root="cars196", labels_at="", nested=False):
    """The same 250 images in the classification layout: cars_train/ (the images with test flag 0 of
    make_cars), cars_test/ (flag 1), numbered in reverse so that file names do not follow the image
    ids; labels_at: folder of cars_test_annos_withlabels.mat ('' beside cars_train/, 'devkit', None);
    nested: Kaggle's cars_train/cars_train/."""
    base = tmp_path / root
    fields = ["bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname"]
    for split, flag in (("cars_train", 0), ("cars_test", 1)):
        images = base / split / split if nested else base / split
        items = [(k, c) for k, c in enumerate(cars_classes(), start=1) if k % 2 == flag][::-1]
        rows = []
        for i, (k, c) in enumerate(items, start=1):
            write_car(images / f"{i:05d}.jpg", k, True)
            rows.append((1, 2, 10, 8, c, f"{i:05d}.jpg"))
        if split == "cars_train":
            cars_mat(base / "devkit" / "cars_train_annos.mat", fields, rows)
            continue
        cars_mat(base / "devkit" / "cars_test_annos.mat", fields[:4] + fields[5:],
                 [r[:4] + r[5:] for r in rows])  # the devkit's test list has no labels
        if labels_at is not None:
            cars_mat(base / labels_at / "cars_test_annos_withlabels.mat", fields, rows)
    cars_meta(base / "devkit" / "cars_meta.mat")
    return tmp_path


def make_cars_folders(tmp_path, root="cars196", meta_at="devkit", slash="-"):
    """The same 250 images in class folders train|test/<class name>/<car_ims number>.jpg (split by the
    test flag of make_cars); a '/' in a class name becomes `slash`; meta_at: folder of cars_meta.mat
    ('devkit', '' beside train/, None)."""
    base = tmp_path / root
    names = cars_class_names()
    for k, c in enumerate(cars_classes(), start=1):
        folder = names[c - 1].replace("/", slash)
        write_car(base / ("test" if k % 2 else "train") / folder / f"{k:06d}.jpg", k, True)
    if meta_at is not None:
        cars_meta(base / meta_at / "cars_meta.mat")
    return tmp_path


@pytest.fixture
def cars_dir(tmp_path):
    return make_cars(tmp_path)


@pytest.fixture
def cars_layouts(tmp_path):
    """build(kind, name=None, **options): a DATA_DIR tmp_path/<name or kind> holding the 250 images of
    make_cars (ids in their sizes, see cars_image_id) in layout 'annos', 'devkit' or 'folders'."""
    builders = {"annos": lambda d, **o: make_cars(d, encode_ids=True, **o), "devkit": make_cars_devkit,
                "folders": make_cars_folders}

    def build(kind, name=None, **options):
        return builders[kind](tmp_path / (name or kind), **options)
    return build


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


# item number -> (folder under Img/img/, status of each of its images): item numbers interleave
# across the splits, as in the real file; item 33 lists its gallery image before its query image.
INSHOP = {
    2: ("WOMEN/Dresses", ["train", "train"]),
    7: ("MEN/Denim", ["query", "gallery", "gallery"]),
    8: ("WOMEN/Dresses", ["train", "train", "train"]),
    12: ("WOMEN/Blouses_Shirts", ["query", "query", "gallery"]),
    19: ("MEN/Tees_Tanks", ["train"]),
    33: ("WOMEN/Tees_Tanks", ["gallery", "query"]),
    40: ("MEN/Denim", ["train", "train"]),
    41: ("WOMEN/Skirts", ["query", "gallery"]),
}
INSHOP_VIEWS = ["1_front", "2_side", "3_back", "4_full"]


def inshop_rows():
    """(path relative to Img/, item id, status) of every image, in the order the file lists them:
    not grouped by split, so that a loader cannot rely on it."""
    rows = [(f"img/{folder}/id_{item:08d}/0{j // 4 + 1}_{INSHOP_VIEWS[j % 4]}.jpg", f"id_{item:08d}", status)
            for item, (folder, statuses) in INSHOP.items() for j, status in enumerate(statuses)]
    return rows[1::2] + rows[::2]


def make_inshop(tmp_path):
    """DATA_DIR with Proxy-Anchor's layout: Inshop_Clothes/Eval/list_eval_partition.txt (a count line,
    the header, then `image_name item_id evaluation_status` rows) and Inshop_Clothes/Img/img/..."""
    root = tmp_path / "Inshop_Clothes"
    rows = inshop_rows()
    for path, item, _ in rows:
        n = int(item[3:])
        write_jpeg(str(root / "Img" / path), color=(n * 37 % 256, n * 91 % 256, 30 * (path.count("side") + 1)))
    lines = [str(len(rows)), "image_name item_id evaluation_status"]
    # Columns padded with runs of spaces: read as whitespace-separated, as Proxy-Anchor's reader does.
    lines += [f"{path:<60}{item:<20}{status}" for path, item, status in rows]
    (root / "Eval").mkdir(parents=True)
    (root / "Eval" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


@pytest.fixture
def inshop_dir(tmp_path):
    return make_inshop(tmp_path)


@pytest.fixture
def layout():
    """The trees' contents for the tests' expectations (conftest is not importable under
    --import-mode=importlib)."""
    return types.SimpleNamespace(cub_images_per_class=cub_images_per_class,
                                 cars_classes=cars_classes(), cars_class_names=cars_class_names(),
                                 cars_image_id=cars_image_id,
                                 sop={"train": SOP_TRAIN, "eval": SOP_TEST},
                                 inshop=INSHOP, inshop_rows=inshop_rows())


def make_textured_cub(root, images_per_class=2, size=48):
    """CUB_200_2011/images/NNN.Species_N/*.jpg (200 classes) of random textures: a class's images
    share a coarse pattern, each has its own fine detail."""
    for c in range(1, 201):
        folder = root / "CUB_200_2011" / "images" / f"{c:03d}.Species_{c}"
        folder.mkdir(parents=True)
        coarse = np.random.default_rng(c).uniform(0, 255, (4, 4, 3))
        for j in range(images_per_class):
            fine = np.random.default_rng(1000 * c + j).normal(0, 40, (size, size, 3))
            pixels = np.kron(coarse, np.ones((size // 4, size // 4, 1))) + fine
            PIL.Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(folder / f"Species_{c}_{j}.jpg")
    return root


@pytest.fixture(scope="session")
def textured_cub(tmp_path_factory):
    return make_textured_cub(tmp_path_factory.mktemp("textured_cub"))


@pytest.fixture
def small_textured_cub(tmp_path):
    """A textured tree of one 16 px image per class that a test may change."""
    return make_textured_cub(tmp_path / "textured", images_per_class=1, size=16)


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
def tiny_inshop(tmp_path_factory):
    return make_inshop(tmp_path_factory.mktemp("inshop"))


@pytest.fixture(scope="session")
def source_ckpt(tiny_cub, tmp_path_factory):
    """A 32-d resnet_narrow source trained one epoch with Proxy-Anchor on the tiny CUB tree."""
    from embedding_transfer import train_source
    out = tmp_path_factory.mktemp("source")
    args = train_source.get_args_parser().parse_args(
        TINY + ["--dataset", "cub", "--DATA_DIR", str(tiny_cub), "--embedding-size", "32", "--batch-size", "12",
                "--IPC", "2", "--l2-norm", "1", "--save", "1", "--LOG_DIR", str(out / "logs"),
                "--save-dir", str(out / "pretrained_source")])
    train_source.main(args)
    return str(out / "pretrained_source" / "resnet_narrow" / "cub_resnet_narrow_32dim_Proxy_Anchor_ckpt.pth")


def standin_trunk(name):
    """The named trunk with random weights and the BatchNorm statistics of image-like inputs."""
    import torch
    from embedding_transfer.models import build_model
    torch.manual_seed(0)
    net = build_model(name, 8).train()
    scale = 60.0 if name == "bn_inception" else 1.0   # BN-Inception takes 0-255 BGR pixels
    for m in net.batchnorms():
        m.reset_running_stats()
        m.momentum = None   # a plain average over the calibration batches
    with torch.no_grad():
        for _ in range(3):
            net.feature_maps(torch.randn(8, 3, 64, 64) * scale)
    return net.model


@pytest.fixture(scope="session")
def imagenet_standins(tmp_path_factory):
    """A TORCH_HOME whose torch.hub cache holds stand-ins for the ImageNet files of BN-Inception,
    ResNet-18 and ResNet-50: random weights with image-like BatchNorm statistics, as trained
    statistics are (frozen statistics of mean 0 and variance 1 let activations blow up or collapse).
    A cached file is used as it is: only a download is hash-checked."""
    import torch
    from embedding_transfer.models.bn_inception import URL
    from embedding_transfer.models.resnet import ResNet18, ResNet50
    home = tmp_path_factory.mktemp("torch_home")
    folder = home / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    for name, url in (("bn_inception", URL), ("resnet18", ResNet18.weights.url), ("resnet50", ResNet50.weights.url)):
        state = {k: v for k, v in standin_trunk(name).state_dict().items() if not k.startswith("embedding.")}
        torch.save(state, folder / os.path.basename(url))
    return str(home)
