#!/usr/bin/env bash
# Download and unpack the paper's datasets into DATA_DIR (default ./data) in the layout the loaders
# read (see README, "Data"), then count the images:  scripts/download_datasets.sh [cub] [cars] [SOP]
# The hosts change from time to time: if a download fails, get the archive from the dataset's page
# (printed below), put it in DATA_DIR, and run this script again: it unpacks what it finds.
set -u
cd "$(dirname "$0")/.."
DATA_DIR=${DATA_DIR:-./data}
mkdir -p "$DATA_DIR"
want=${*:-cub cars SOP}
failed=0

fetch() { # url file page
  [ -s "$DATA_DIR/$2" ] && return 0
  echo "downloading $1"
  if ! curl -fL --retry 3 -o "$DATA_DIR/$2.part" "$1"; then
    rm -f "$DATA_DIR/$2.part"
    echo "error: could not download $1; get $2 from $3 and put it in $DATA_DIR/" >&2
    failed=1
    return 1
  fi
  mv "$DATA_DIR/$2.part" "$DATA_DIR/$2"
}

for ds in $want; do
  case $ds in
    cub)
      fetch https://data.caltech.edu/records/65de6-vzb20/files/CUB_200_2011.tgz CUB_200_2011.tgz \
        https://www.vision.caltech.edu/datasets/cub_200_2011/ &&
        tar -xzf "$DATA_DIR/CUB_200_2011.tgz" -C "$DATA_DIR" ;;
    cars)
      mkdir -p "$DATA_DIR/cars196"
      fetch http://ai.stanford.edu/~jkrause/car196/car_ims.tgz cars196/car_ims.tgz \
        http://ai.stanford.edu/~jkrause/cars/car_dataset.html &&
      fetch http://ai.stanford.edu/~jkrause/car196/cars_annos.mat cars196/cars_annos.mat \
        http://ai.stanford.edu/~jkrause/cars/car_dataset.html &&
        tar -xzf "$DATA_DIR/cars196/car_ims.tgz" -C "$DATA_DIR/cars196" ;;
    SOP)
      fetch ftp://cs.stanford.edu/cs/cvgl/Stanford_Online_Products.zip Stanford_Online_Products.zip \
        https://cvgl.stanford.edu/projects/lifted_struct/ &&
        (cd "$DATA_DIR" && unzip -q -o Stanford_Online_Products.zip) ;;
    *) echo "error: unknown dataset $ds (cub, cars or SOP)" >&2; failed=1 ;;
  esac
done
"${PYTHON:-python}" scripts/verify_data.py --DATA_DIR "$DATA_DIR" $want || failed=1
exit "$failed"
