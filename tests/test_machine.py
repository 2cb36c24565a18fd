"""Machine descriptions travel with every timing: this CPU's, read from /proc/cpuinfo, and a file stem per CPU kind
so that two 2-core VMs with different CPUs do not write their figures into one file."""
from __future__ import annotations

from pathlib import Path

from edge_age.machine import cpu_flags, cpu_model, describe_machine, int8_summary, machine_slug


def test_this_machine_is_described_from_its_cpuinfo():
    cpuinfo = Path("/proc/cpuinfo").read_text()
    machine = describe_machine()
    assert machine["cpu"] == cpu_model(cpuinfo) and machine["int8"] == int8_summary(cpu_flags(cpuinfo))
    assert machine_slug(machine).endswith(f"-{machine['cores']}core") or machine["gpu"]


def test_machine_slugs_tell_cpus_apart_and_name_gpus():
    amd = {"cpu": "AMD EPYC", "cores": 2, "gpu": None}
    intel = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "gpu": None}
    assert machine_slug(amd) == "amd-epyc-2core" and machine_slug(intel) == "intel-xeon-processor-2core"
    assert machine_slug({**intel, "gpu": "NVIDIA H100 80GB HBM3"}) == "nvidia-h100-80gb-hbm3"


def test_int8_summary_names_the_instructions_in_order_of_strength():
    assert int8_summary({"avx2", "avx512f", "avx512_vnni", "amx_int8"}) == "AMX int8 + AVX-512 VNNI"
    assert int8_summary({"avx2", "avx512_vnni"}) == "VNNI (int8 dot products)"
    assert int8_summary({"avx2"}).startswith("AVX2 without VNNI")
    assert int8_summary({"asimddp", "i8mm"}) == "ARM dot product + i8mm"
