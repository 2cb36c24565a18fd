"""On-device timing: a real OpenSSH server on 127.0.0.1 as the "board" (this machine, so timings are real), and
the adb path checked at the process boundary with an `adb` stand-in that logs what it is asked and answers as a
phone would."""
import json
import os
import platform
import re
import shutil
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge_age.benchmark.devices import (AdbDevice, DeviceError, elf_abi, open_device, parse_adb_devices,
                                        parse_benchmark_model)
from edge_age.cli import main
from edge_age.machine import cpu_flags, int8_summary


# benchmark_model's log for one model, laid out line for line as LiteRT's benchmark tool prints it
# (tflite/tools/benchmark/benchmark_model.cc and benchmark_tflite_model.cc: parameters, the delegate line,
# the warm-up and timed "count=" lines, the "Inference timings in us" summary, the memory lines). No phone or
# Android build of the binary is available on this machine, so it is not a capture from a phone: the figures are
# of a typical mid-range phone running a small int8 model, written in that exact format.
BENCHMARK_MODEL_OUTPUT = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Min num runs: [50]
INFO: Min warmup runs: [10]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/edge-age.abc123/efficientnet_lite0_int8.tflite]
INFO: #threads used for CPU inference: [4]
INFO: Use xnnpack: [1]
INFO: Loaded model /data/local/tmp/edge-age.abc123/efficientnet_lite0_int8.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: XNNPACK delegate created.
INFO: Replacing 62 out of 64 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 2 partitions for the whole graph.
INFO: Explicitly applied XNNPACK delegate, and the model graph will be partially executed by the delegate w/ 1 delegate kernels.
INFO: The input model file size (MB): 4.21
INFO: Initialized session in 38.62ms.
INFO: Running benchmark for at least 10 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=142 first=9150 curr=3340 min=3211 max=9150 avg=3521.2 std=512

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=290 first=3402 curr=3318 min=3190 max=4410 avg=3415.7 std=160 p5=3226 median=3391 p95=3701

INFO: Inference timings in us: Init: 38620, First inference: 9150, Warmup (avg): 3521.2, Inference (avg): 3415.7
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=9.5 overall=14.25
INFO: Overall peak memory footprint (MB) via periodic monitoring: 21.3
"""


def test_benchmark_model_output_is_parsed():
    parsed = parse_benchmark_model(BENCHMARK_MODEL_OUTPUT)
    assert parsed["load_ms"] == pytest.approx(38.62) and parsed["first_inference_ms"] == pytest.approx(9.15)
    assert parsed["warmup_ms_mean"] == pytest.approx(3.5212) and parsed["latency_ms_mean"] == pytest.approx(3.4157)
    assert parsed["runs"] == 290 and parsed["latency_ms_min"] == pytest.approx(3.19)  # the timed run, not the warm-up
    assert parsed["latency_ms_median"] == pytest.approx(3.391) and parsed["latency_ms_p95"] == pytest.approx(3.701)
    assert parsed["peak_memory_mb"] == pytest.approx(14.25)
    assert parsed["delegate"] == {"name": "TfLiteXNNPackDelegate", "nodes": 62, "of": 64,
                                  "coverage": pytest.approx(62 / 64), "partitions": 2}
    assert "error" not in parsed
    # The GPU delegate prints no "Replacing" line, older builds no "INFO: " prefix and another memory line.
    gpu = parse_benchmark_model(
        "STARTING!\nUse gpu: [1]\nINFO: Created TensorFlow Lite delegate for GPU.\n"
        "Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.\n"
        "count=40 first=5100 curr=4200 min=4100 max=5100 avg=4300 std=90\n"
        "Inference timings in us: Init: 512000, First inference: 5100, Warmup (avg): 4300, Inference (avg): 4250\n"
        "Peak memory footprint (MB): init=3.5 overall=30.25\n")
    assert gpu["delegate"] == {"name": "GPU", "nodes": None, "of": None, "coverage": 1.0, "partitions": 1}
    assert gpu["load_ms"] == pytest.approx(512) and gpu["peak_memory_mb"] == pytest.approx(30.25)
    assert gpu["latency_ms_mean"] == pytest.approx(4.25) and gpu["runs"] == 40
    failed = parse_benchmark_model("INFO: STARTING!\nERROR: Failed to load model /data/local/tmp/x.tflite\n")
    assert failed["error"].startswith("Failed to load model") and "latency_ms_mean" not in failed


def test_adb_devices_and_elf_abi(tmp_path):
    listed = "List of devices attached\nR58M123ABC\tdevice\nemulator-5554\toffline\nZX1\tunauthorized\n\n"
    assert parse_adb_devices(listed) == [("R58M123ABC", "device"), ("emulator-5554", "offline"), ("ZX1", "unauthorized")]
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(_elf_header(183))
    assert elf_abi(binary) == "arm64-v8a"
    binary.write_bytes(b"#!/bin/sh\n")
    assert elf_abi(binary) is None


def _elf_header(machine: int) -> bytes:
    """The first 20 bytes of a 64-bit little-endian ELF executable for ``machine``, padded."""
    return b"\x7fELF\x02\x01\x01" + b"\0" * 9 + (2).to_bytes(2, "little") + machine.to_bytes(2, "little") + b"\0" * 44


# ---------------------------------------------------------------- adb, at the process boundary


@pytest.fixture()
def fake_adb(tmp_path, monkeypatch):
    """An `adb` first on PATH that records each call and answers from a scenario the test writes."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "adb"
    script.write_text(f"""#!{sys.executable}
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_ADB_LOG"], "a") as log:
    log.write(json.dumps(args) + "\\n")
scenario = json.load(open(os.environ["FAKE_ADB_SCENARIO"]))
if args[:1] == ["-s"]:
    args = args[2:]
if args[0] == "devices":
    print(scenario["devices"])
elif args[0] == "push":
    pass
elif args[0] == "logcat" and "-d" in args:
    print(scenario.get("logcat", ""))
elif args[0] == "shell":
    command = args[1]
    if command.startswith("getprop "):
        print(scenario["props"].get(command.split()[1], ""))
    elif command.startswith("mktemp -d /data/local/tmp/edge-age."):
        print("/data/local/tmp/edge-age.abc123")
    elif "benchmark_model --graph=" in command:
        graph = command.split("--graph=")[1].split()[0]
        print(next((text for name, text in scenario.get("outputs", {{}}).items() if graph.endswith(name)),
                   scenario["output"]))
        sys.exit(scenario.get("rc", 0))
""")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_ADB_LOG", str(tmp_path / "adb.log"))
    monkeypatch.setenv("FAKE_ADB_SCENARIO", str(tmp_path / "scenario.json"))
    binary = tmp_path / "benchmark_model"
    binary.write_bytes(_elf_header(183))
    phone = {"ro.product.model": "Pixel 7", "ro.product.manufacturer": "Google", "ro.soc.model": "Tensor G2",
             "ro.build.version.release": "14", "ro.product.cpu.abi": "arm64-v8a"}

    def scenario(devices="List of devices attached\nR58M123ABC\tdevice\n", output=BENCHMARK_MODEL_OUTPUT, rc=0,
                 props=phone, logcat="", outputs=None):
        (tmp_path / "scenario.json").write_text(json.dumps({"devices": devices, "output": output, "rc": rc,
                                                            "props": props, "logcat": logcat,
                                                            "outputs": outputs or {}}))
        (tmp_path / "adb.log").write_text("")
        return binary

    def calls():
        return [json.loads(line) for line in (tmp_path / "adb.log").read_text().splitlines()]

    return scenario, calls


def test_adb_pushes_runs_pinned_and_removes_what_it_pushed(fake_adb, tmp_path):
    scenario, calls = fake_adb
    binary = scenario()
    model = tmp_path / "efficientnet_lite0_int8.tflite"
    model.write_bytes(b"TFL3 model bytes")
    device = open_device("adb", benchmark_binary=str(binary), cores="f0", use_gpu=True)
    with device:
        (result,) = device.time_files([model], threads=4, runs=50, warmup=10)
    assert device.facts["model"] == "Pixel 7" and device.facts["soc"] == "Tensor G2" and device.facts["android"] == "14"
    assert result["status"] == "measured" and result["model_only"] and result["delegate"]["nodes"] == 62
    remote = "/data/local/tmp/edge-age.abc123"
    shell = [c[3] for c in calls() if c[:3] == ["-s", "R58M123ABC", "shell"]]
    assert calls()[0] == ["devices"]
    assert [c[3:] for c in calls() if "push" in c] == [[str(binary), f"{remote}/benchmark_model"],
                                                      [str(model), f"{remote}/{model.name}"]]
    run = next(c for c in shell if "benchmark_model --graph" in c)
    assert run.startswith(f"taskset f0 {remote}/benchmark_model --graph={remote}/{model.name} --num_threads=4 "
                          "--num_runs=50 --warmup_runs=10") and "--use_gpu=true" in run
    assert shell[-2:] == [f"rm -f {remote}/{model.name}", f"rm -rf {remote}"]  # the file, then the whole folder


def test_adb_times_the_apps_file_and_model_as_in_turns_one_process_each(fake_adb, tmp_path):
    """benchmark_model loads one model, so on a phone the pair is timed by alternating processes: app, model A,
    app, model A, ...; each reading's ratio is the app's median over model A's, and the median reading is kept."""
    scenario, calls = fake_adb
    faster = BENCHMARK_MODEL_OUTPUT.replace("median=3391", "median=1700")
    binary = scenario(outputs={"custom_cnn_int8.tflite": faster})
    app, model_a = tmp_path / "efficientnet_lite0_int8.tflite", tmp_path / "custom_cnn_int8.tflite"
    app.write_bytes(b"TFL3 app")
    model_a.write_bytes(b"TFL3 model A")
    with open_device("adb", benchmark_binary=str(binary)) as device:
        pair = device.time_in_turns(app, model_a, threads=1, runs=50, warmup=10, processes=3)
    assert pair["status"] == "measured" and pair["processes"] == 3 and len(pair["readings"]) == 3
    assert pair["ratio"] == pytest.approx(3.391 / 1.700) and pair["latency_ms_median"] == pytest.approx(3.391)
    remote = "/data/local/tmp/edge-age.abc123"
    shell = [c[3] for c in calls() if c[:3] == ["-s", "R58M123ABC", "shell"]]
    graphs = [c.split("--graph=")[1].split()[0] for c in shell if "benchmark_model --graph=" in c]
    assert graphs == [f"{remote}/turns-0-{app.name}", f"{remote}/turns-1-{model_a.name}"] * 3
    assert "--num_threads=1" in next(c for c in shell if "--graph=" in c)
    assert f"rm -f {remote}/turns-0-{app.name} {remote}/turns-1-{model_a.name}" in shell


@pytest.mark.parametrize("devices,spec,message", [
    ("List of devices attached\n\n", "adb", "no Android device is attached"),
    ("List of devices attached\nAAA\tdevice\nBBB\tdevice\n", "adb", "2 devices are attached (AAA, BBB); choose one"),
    ("List of devices attached\nAAA\tunauthorized\n", "adb:AAA", "AAA is not attached and ready"),
])
def test_adb_device_choice_errors(fake_adb, devices, spec, message):
    scenario, _ = fake_adb
    binary = scenario(devices=devices)
    with pytest.raises(DeviceError, match=re.escape(message)):
        with open_device(spec, benchmark_binary=str(binary)):
            pass


def test_adb_wrong_abi_binary_and_missing_binary_are_refused(fake_adb, tmp_path):
    scenario, calls = fake_adb
    binary = scenario()
    binary.write_bytes(_elf_header(62))  # an x86-64 build for an arm64 phone
    with pytest.raises(DeviceError, match="built for x86_64, the phone is arm64-v8a"):
        with open_device("adb", benchmark_binary=str(binary)):
            pass
    assert not any("push" in c for c in calls())  # nothing was copied to the phone
    with pytest.raises(DeviceError, match="benchmark_model for the phone's ABI"):
        with AdbDevice(name="adb", kind="adb", suffixes=(".tflite",), benchmark_binary=None):
            pass


def test_a_file_the_phone_rejects_is_one_failed_row(fake_adb, tmp_path):
    scenario, calls = fake_adb
    binary = scenario(output="INFO: STARTING!\nERROR: Failed to load model /data/local/tmp/x.tflite", rc=1)
    model = tmp_path / "m.tflite"
    model.write_bytes(b"not a model")
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"onnx")
    with open_device("adb", benchmark_binary=str(binary)) as device:
        rejected, other = device.time_files([model, onnx_file], threads=1, runs=10, warmup=1)
    assert rejected["status"] == "failed to run" and rejected["note"].startswith("Failed to load model")
    assert other["status"] == "not measured" and ".tflite" in other["note"]
    assert ["shell", "rm -rf /data/local/tmp/edge-age.abc123"] == calls()[-1][2:]


# ---------------------------------------------------------------- a real ssh "board"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def ssh_board(tmp_path_factory):
    """sshd on 127.0.0.1 with a host key and a client key made here; yields (spec, ssh_config)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(sshd).exists() or shutil.which("ssh") is None:
        message = "OpenSSH is not installed: apt-get install openssh-server openssh-client"
        if os.environ.get("EDGE_AGE_REQUIRE_SSH"):
            pytest.fail(message)
        pytest.skip(message)
    folder = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / name)], check=True)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
    port = _free_port()
    (folder / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {folder}/host_key\nPidFile {folder}/sshd.pid\n"
        f"AuthorizedKeysFile {folder}/authorized_keys\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nPermitRootLogin prohibit-password\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation folder
    server = subprocess.Popen([sshd, "-D", "-e", "-f", str(folder / "sshd_config")], stderr=open(folder / "sshd.log", "w"))
    host_key = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_key[0]} {host_key[1]}\n")
    (folder / "ssh_config").write_text(
        f"Host 127.0.0.1\n  IdentityFile {folder}/client_key\n  IdentitiesOnly yes\n"
        f"  UserKnownHostsFile {folder}/known_hosts\n  StrictHostKeyChecking yes\n")
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        server.kill()
        pytest.fail(f"sshd did not start: {(folder / 'sshd.log').read_text()}")
    yield f"ssh://{user}@127.0.0.1:{port}", str(folder / "ssh_config"), folder
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def export_dir(tiny_custom_cnn_export):
    """custom_cnn's ONNX and TFLite fp32/int8 files (conftest)."""
    return tiny_custom_cnn_export


def test_an_ssh_board_times_files_with_the_hosts_code_and_cleans_up(ssh_board, export_dir):
    spec, config, _ = ssh_board
    device = open_device(spec, ssh_config=config, python=sys.executable)
    files = [export_dir / "custom_cnn_fp32.tflite", export_dir / "custom_cnn_fp32.onnx",
             export_dir / "manifest.json"]
    with device:
        remote = Path(device.remote_dir)
        assert remote.is_dir() and remote.name.startswith("edge-age.")  # the board is this machine
        results = device.time_files(files, threads=1, runs=20, warmup=3)
    assert not remote.exists()  # removed on the way out
    assert device.facts["arch"] == platform.machine() and device.facts["versions"]["ai-edge-litert"] != "not installed"
    for result in results[:2]:
        assert result["status"] == "measured" and result["tool"] == "edge-age timing.py" and result["model_only"]
        assert 0 < result["latency_ms_min"] <= result["latency_ms_median"] <= result["latency_ms_max"]
        assert result["load_ms"] > 0 and result["first_inference_ms"] > 0
    assert results[2]["status"] == "not measured" and ".json" in results[2]["note"]


def test_a_board_without_the_runtimes_says_what_to_install(ssh_board, tmp_path):
    spec, config, folder = ssh_board
    bare = folder / "bare-python"  # a Python that sees no site-packages: no numpy, no runtimes
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")
    bare.chmod(0o755)
    before = set(Path("/tmp").glob("edge-age.*"))
    with pytest.raises(DeviceError, match="pip install numpy ai-edge-litert onnxruntime"):
        with open_device(spec, ssh_config=config, python=str(bare)):
            pass
    assert set(Path("/tmp").glob("edge-age.*")) == before  # the folder it made on the board is gone again


def test_benchmark_report_puts_board_rows_beside_the_host(ssh_board, export_dir, small_faces_dir, tmp_path, capsys):
    spec, config, _ = ssh_board
    out = tmp_path / "report"
    # The fp32 TFLite file stands in for the app's int8 file, so the board also times it against model A's int8
    # file in turns, as the host does
    manifest = json.loads((export_dir / "manifest.json").read_text())
    stand_in = next(f for f in manifest["files"] if f["format"] == "tflite" and f["precision"] == "fp32")
    assets = tmp_path / "assets"
    assets.mkdir()
    (assets / "manifest.json").write_text(json.dumps({"files": [{"precision": "int8", "sha256": stand_in["sha256"]}]}))
    code = main(["benchmark", "--exports", str(export_dir), "--data", str(small_faces_dir), "--whole-set",
                 "--threads", "1", "--runs", "10", "--out", str(out), "--device", spec, "--ssh-config", config,
                 "--remote-python", sys.executable, "--device", "ssh://nobody@127.0.0.1:1", "--app-assets", str(assets)])
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    board = [r for r in results["device_rows"] if r["device"] == spec]
    unreachable = [r for r in results["device_rows"] if r["device"] == "ssh://nobody@127.0.0.1:1"]
    assert {(r["format"], r["precision"]) for r in board} >= {("tflite", "fp32"), ("onnx", "fp32")}
    measured = [r for r in board if r["status"] == "measured"]
    assert measured and all(r["latency"]["1"]["latency_ms_median"] > 0 and r["accuracy_from"] == "host (same file)"
                            for r in measured)
    assert unreachable and all(r["status"] == "device unavailable" and "cannot reach" in r["note"] for r in unreachable)
    (app_row,) = [r for r in board if r.get("against_model_a_in_turns")]
    pair = app_row["against_model_a_in_turns"]
    assert app_row["file"].endswith(stand_in["file"]) and pair["status"] == "measured" and pair["processes"] == 5
    assert pair["tool"] == "edge-age timing.py, in turns" and pair["threads"] == 1
    assert all(r["ratio"] == pytest.approx(r["latency_ms_median"] / r["reference_latency_ms_median"])
               for r in pair["readings"])
    assert pair["ratio"] == sorted(r["ratio"] for r in pair["readings"])[2]
    report = (out / "report.md").read_text()
    assert "## On devices (model-only timing)" in report and spec in report and "device unavailable" in report
    assert f"- {spec}: {pair['latency_ms_median']:.2f} ms against" in report
    assert f"int8: {int8_summary(cpu_flags(Path('/proc/cpuinfo').read_text()))}" in report  # the board's (this CPU's)
    assert (out / "latency_by_device.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Accuracy by age band" in report and "## Cold start and memory" in report
    crossed = [t["litert_benchmark"] for r in results["rows"] for t in r.get("latency", {}).values()
               if "median_ms" in t.get("litert_benchmark", {})]
    assert crossed and all(c["fully_accelerated"] in (True, False) for c in crossed)
    assert "| whole graph on XNNPACK |" in report


def test_host_timing_agrees_with_litert_benchmark(export_dir, tmp_path):
    """The cross-check the report relies on: our timer and Google's litert-benchmark on the same file, same
    threads. The bound is wide on purpose (a shared 2-core machine); the figures are what the report prints."""
    tool = shutil.which("litert-benchmark") or str(Path(sys.executable).with_name("litert-benchmark"))
    if not Path(tool).exists():
        pytest.skip("litert-benchmark (installed with ai-edge-litert >= 2.3) is not here")
    from edge_age.benchmark.timing import time_file

    model = export_dir / "custom_cnn_fp32.tflite"
    ours = time_file(str(model), threads=1, runs=50, warmup=5)
    subprocess.run([tool, "--model", str(model), "--num_runs", "50", "--warmup_runs", "5", "--num_threads", "1",
                    "--result_json", str(tmp_path / "lb.json")], capture_output=True, check=True, timeout=300)
    theirs = json.loads((tmp_path / "lb.json").read_text())["latency"]
    ratio = ours["latency_ms_median"] / theirs["median_ms"]
    assert 0.33 < ratio < 3, (ours["latency_ms_median"], theirs["median_ms"])


# What the app's StageTimer.report() logs (android_demo/core StageTimerTest checks that format), as logcat shows it
APP_LOGCAT = ('12-04 05:01:02.345  4321  4400 I EdgeAgeBench: EDGE_AGE_BENCH {"model": "custom_cnn_int8.tflite", '
              '"accelerator": "CPU, XNNPACK", "threads": 4, "frames": 100, "stages": {"crop": {"median_ms": 0.8100, '
              '"mean_ms": 0.8300, "p90_ms": 0.9000}, "tensor": {"median_ms": 0.1200, "mean_ms": 0.1300, "p90_ms": '
              '0.1500}, "inference": {"median_ms": 2.9000, "mean_ms": 3.0000, "p90_ms": 3.4000}, "decode": '
              '{"median_ms": 0.0100, "mean_ms": 0.0100, "p90_ms": 0.0200}, "frame": {"median_ms": 3.8500, '
              '"mean_ms": 3.9700, "p90_ms": 4.4000}}}')


def test_app_stages_start_the_benchmark_mode_and_read_logcat(fake_adb, tmp_path):
    from edge_age.benchmark.devices import app_stage_times

    scenario, calls = fake_adb
    binary = scenario(logcat="--------- beginning of main\n" + APP_LOGCAT)
    faces = tmp_path / "faces.json"
    faces.write_text(json.dumps({"faces": []}))
    with open_device("adb", benchmark_binary=str(binary), app_stages=True) as device:
        stages = app_stage_times(device, ["custom_cnn_int8.tflite"], faces, runs=10, threads=4)
    frame = stages["custom_cnn_int8.tflite"]["stages"]
    assert frame["inference"]["median_ms"] == 2.9 and frame["frame"]["median_ms"] == 3.85
    shell = [c[3] for c in calls() if c[:3] == ["-s", "R58M123ABC", "shell"]]
    start = next(c for c in shell if c.startswith("am start"))
    assert "-n dev.edgeage.demo/.BenchmarkActivity --es model custom_cnn_int8.tflite" in start
    assert ["-s", "R58M123ABC", "logcat", "-c"] in calls()
    assert "rm -rf /sdcard/Android/data/dev.edgeage.demo/files/edge-age-bench" in shell
