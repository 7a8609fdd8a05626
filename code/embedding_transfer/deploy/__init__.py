"""From a trained network to a retrieval system: exporting it (ONNX, TorchScript) with its
preprocessing, running the export or the checkpoint on image files, and searching a gallery.

  network.py     the network of a checkpoint (its recorded architecture, size and L2 norm)
  preprocess.py  the evaluation preprocessing as JSON, and that JSON applied without torchvision
  exporters.py   writing ONNX and TorchScript files with a dynamic batch axis
  runners.py     embedding preprocessed batches with a checkpoint, an ONNX or a TorchScript file
  check.py       the exported model's embeddings of real images against PyTorch's
  images.py      image folders: listing, class-folder labels, the unreadable-file check, embedding
  faiss_index.py an approximate index (faiss IVF) for galleries too big for the exact scan
"""
