"""Which CPU kernels PyTorch, oneDNN and MKL pick, pinned before torch loads.

Each library chooses its kernels (and so its rounding) by the CPU's instruction set, and a GAN
amplifies last-bit differences: the same commit gave different models on an AVX-512 and an AVX2
machine (docs/results.md, Reproducibility). Capping all three at AVX2 makes x86-64 machines with
AVX2 compute the same bits, for the same number of threads. A value already in the environment
wins; SSGAN_NATIVE_KERNELS=1 leaves every library its own choice (faster on AVX-512, not portable).
This module must not import torch: it runs before it.
"""
from __future__ import annotations

import os
import platform
from typing import MutableMapping

CPU_KERNEL_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def pin_cpu_kernels(environ: MutableMapping[str, str] = os.environ, machine: str | None = None) -> dict[str, str]:
    """Set the kernel caps that are not set yet; returns the values in force (empty when not pinned)."""
    if environ.get("SSGAN_NATIVE_KERNELS") == "1" or (machine or platform.machine()).lower() not in ("x86_64", "amd64"):
        return {}
    for key, value in CPU_KERNEL_ENV.items():
        environ.setdefault(key, value)
    return {key: environ[key] for key in CPU_KERNEL_ENV}
