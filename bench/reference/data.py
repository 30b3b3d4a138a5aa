"""IDX (MNIST / Fashion-MNIST) and CIFAR-10 binary loaders, seeded minibatch iterator, CIFAR augmentation."""
import gzip
import os
import struct

import numpy as np
import torch

FMNIST_DIR = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    assert zero == 0 and dtype == 0x08, f"{path}: only unsigned-byte IDX supported"
    shape = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
    arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    return torch.from_numpy(arr.copy()).reshape(shape)


def _find(d, stem):
    for p in (os.path.join(d, stem + ".gz"), os.path.join(d, stem)):
        if os.path.exists(p):
            return p
    raise FileNotFoundError(os.path.join(d, stem) + "[.gz]")


def load_idx_split(d, split):
    """split: 'train' or 't10k'. Returns images float32 [N,1,H,W] in [0,1], labels int64 [N]."""
    x = read_idx(_find(d, f"{split}-images-idx3-ubyte")).float().div_(255.0).unsqueeze(1)
    y = read_idx(_find(d, f"{split}-labels-idx1-ubyte")).long()
    return x, y


def load_cifar_bin(d, train):
    """CIFAR-10 binary version (data_batch_{1..5}.bin / test_batch.bin): 1 label byte + 3072 pixel bytes."""
    files = [f"data_batch_{i}.bin" for i in range(1, 6)] if train else ["test_batch.bin"]
    raw = np.concatenate([np.fromfile(os.path.join(d, f), dtype=np.uint8) for f in files]).reshape(-1, 3073)
    y = torch.from_numpy(raw[:, 0].astype(np.int64))
    x = torch.from_numpy(raw[:, 1:].copy()).reshape(-1, 3, 32, 32).float().div_(255.0)
    return x, y


def load(d, train):
    if os.path.exists(os.path.join(d, "test_batch.bin")):
        return load_cifar_bin(d, train)
    return load_idx_split(d, "train" if train else "t10k")


def batches(x, y, batch_size, seed, epoch, shuffle=True):
    """Yield (x, y) minibatches; permutation from torch.Generator seeded with seed + epoch; keeps the last partial batch."""
    n = x.shape[0]
    if shuffle:
        g = torch.Generator().manual_seed(seed + epoch)
        idx = torch.randperm(n, generator=g)
    else:
        idx = torch.arange(n)
    for i in range(0, n, batch_size):
        j = idx[i:i + batch_size]
        yield x[j], y[j]


def pad_crop_flip(x, generator, pad=4):
    """torchvision RandomCrop(32, padding=pad) + RandomHorizontalFlip on a batch [N,C,H,W], zero padding."""
    n, _, h, w = x.shape
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad))
    top = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    left = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = torch.rand(n, generator=generator) < 0.5
    out = torch.empty_like(x)
    for i in range(n):
        crop = padded[i, :, top[i]:top[i] + h, left[i]:left[i] + w]
        out[i] = crop.flip(-1) if flip[i] else crop
    return out
