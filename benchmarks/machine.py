"""The machine a benchmark's timings come from, recorded in every results file: the CPU's name and the flags
that decide its speed here (AVX512-BF16 / AMX: bf16 about 2x faster; AVX2 only: fp32), cores, platform and load,
or the GPU's name. Shared by the benchmark scripts (``from machine import machine``)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def machine() -> dict:
    info: dict = {"platform": platform.platform(), "logical_cpus": os.cpu_count(),
                  "load_average_1m_at_start": os.getloadavg()[0]}
    try:
        import psutil

        info["physical_cores"] = psutil.cpu_count(logical=False)
    except ImportError:
        info["physical_cores"] = None
    try:
        import torch

        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    except ImportError:
        pass
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    flags = next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])
    info["cpu"] = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
                       platform.processor() or "unknown")
    info.update({"avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags, "avx2": "avx2" in flags})
    return info
