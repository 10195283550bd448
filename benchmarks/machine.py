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


def versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Python's version and each package's installed version ("not installed" if absent), for a results file."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def recipe_preset(device: str, threads: int | None = None, fp32: bool = False):
    """The course recipe's preset and CPU threads for a benchmark: on ``cuda`` the CPU recipe's batch shape
    (batch 4, padding-free) in bf16 with the fused optimiser, for sweeps of the CPU recipe on a GPU; on ``cpu`` the
    ``cpu`` preset (``fp32=True``: the path of CPUs without bf16 instructions)."""
    from dataclasses import replace

    import torch

    from course_lib import train

    if device == "cuda":
        preset = replace(train.PRESETS["cpu"], name="cpu-shape-on-gpu", dtype="bf16", needs="cuda+bf16",
                         optim="adamw_torch_fused")
        return preset, torch.get_num_threads()
    preset, _ = train.choose_preset("cpu")
    if fp32:
        preset = replace(preset, dtype="fp32")
    return preset, train.cpu_threads(threads)[0]
