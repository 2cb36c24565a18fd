"""What machine a figure was measured on: a timing means little without the CPU, its int8 instructions, the
threads used and the runtime versions. Every report and results file carries ``describe_machine()``."""
from __future__ import annotations

import os
import platform
import re
import time
from importlib import metadata
from pathlib import Path

# The CPU features that decide how fast int8 runs: x86 VNNI/AMX add int8 dot products; ARM's dot-product
# (asimddp) and i8mm do the same on phones and boards. Names as /proc/cpuinfo spells them.
INT8_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_tile", "asimddp", "i8mm", "sve")
RUNTIME_PACKAGES = ("torch", "onnxruntime", "ai-edge-litert", "litert-torch", "coremltools", "numpy")


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of /proc/cpuinfo text (x86 'flags', ARM 'Features')."""
    for line in cpuinfo.splitlines():
        if re.match(r"^(flags|Features)\s*:", line):
            return set(line.split(":", 1)[1].split())
    return set()


def cpu_model(cpuinfo: str) -> str:
    for key in ("model name", "Hardware", "Model", "cpu model"):
        for line in cpuinfo.splitlines():
            if line.startswith(key) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def int8_summary(flags: set[str]) -> str:
    """The int8 instructions present, in words a reader can match against their own CPU."""
    if "amx_int8" in flags:
        return "AMX int8 + AVX-512 VNNI"
    if "avx512_vnni" in flags or "avx_vnni" in flags:
        return "VNNI (int8 dot products)"
    if "i8mm" in flags or "asimddp" in flags:
        return "ARM dot product" + (" + i8mm" if "i8mm" in flags else "")
    if "avx2" in flags:
        return "AVX2 without VNNI (int8 through 16-bit sums)"
    return "no int8 dot-product instructions found"


def runtime_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for package in RUNTIME_PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def describe_machine() -> dict:
    """CPU model, cores, the int8-relevant ISA features, OS, governor where readable, GPU and runtime versions."""
    cpuinfo = _read("/proc/cpuinfo") or ""
    flags = cpu_flags(cpuinfo)
    gpu = None
    try:
        import torch

        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return {
        "cpu": cpu_model(cpuinfo),
        "arch": platform.machine(),
        "cores": os.cpu_count(),
        "cores_available": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "isa": sorted(f for f in INT8_FEATURES if f in flags),
        "int8": int8_summary(flags),
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "gpu": gpu,
        "os": platform.platform(),
        "python": platform.python_version(),
        "versions": runtime_versions(),
        "date": time.strftime("%Y-%m-%d"),
    }


def machine_line(machine: dict) -> str:
    """One line for a report's header."""
    return (f"{machine['cpu']} ({machine['arch']}, {machine['cores']} cores; int8: {machine['int8']}; "
            f"ISA {', '.join(machine['isa']) or 'none of ' + '/'.join(INT8_FEATURES[:4])}"
            + (f"; governor {machine['governor']}" if machine.get("governor") else "")
            + f"), GPU: {machine['gpu'] or 'none'}; {machine['os']}")


def machine_slug(machine: dict) -> str:
    """A file-name stem per machine kind: the GPU, or the CPU model and core count, so that figures measured on an
    AMD and an Intel 2-core VM land in different files (e.g. ``intel-xeon-processor-2core``)."""
    cpu = re.sub(r"\((r|tm)\)", "", machine["cpu"].lower())
    name = machine["gpu"] or f"{cpu}-{machine['cores']}core"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
