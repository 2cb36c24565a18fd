"""Timing exported files on other machines: an Android phone over adb, a Linux board over ssh.

A device copies a model file to a private folder of its own, times it there, and removes what it copied,
also when interrupted. Both kinds share ``Device.time_files``: what differs is only how a command is run and
a file copied (``_run``, ``_push``) and which tool times the file:

* ``SshDevice`` (``ssh://[user@]host[:port]``): copies benchmark/timing.py (numpy + the runtime, no edge-age)
  and runs it with the board's Python, so a board's rows come from the same code as the host's.
* ``AdbDevice`` (``adb`` or ``adb:SERIAL``): runs LiteRT's ``benchmark_model`` binary, which you supply for
  the phone's ABI (``--benchmark-binary``), optionally pinned to cores with ``taskset`` and with the GPU, NNAPI
  or XNNPACK delegate; its log is parsed by ``parse_benchmark_model`` (timings, memory, delegate coverage).

Every timing here is model-only (a prepared input tensor, no decode, crop or resize) and says so. Keys,
known_hosts and adb authorisation are the user's own setup; nothing is stored.
"""
from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from edge_age.benchmark.timing import summarise_turns

TIMING_SCRIPT = Path(__file__).with_name("timing.py")
BENCHMARK_MODEL_HELP = ("LiteRT's benchmark_model for the phone's ABI (e.g. android_aarch64), from the LiteRT "
                        "releases' prebuilt tools or built with `bazel build -c opt --config=android_arm64 "
                        "//tflite/tools/benchmark:benchmark_model`; pass it with --benchmark-binary PATH")
# ELF e_machine values of the ABIs Android runs
ELF_MACHINES = {3: "x86", 40: "armeabi-v7a", 62: "x86_64", 183: "arm64-v8a"}
COMMAND_SECONDS = 600


class DeviceError(RuntimeError):
    """The device cannot be used at all (not attached, unreachable, two attached and none chosen)."""


@dataclass
class Device:
    """Somewhere files are timed; ``time_files`` gives one result per file, each with a status."""

    name: str
    kind: str
    suffixes: tuple[str, ...] = ()
    facts: dict = field(default_factory=dict)
    remote_dir: str | None = None

    # ---- what a kind of device provides
    def _run(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        raise NotImplementedError

    def _push(self, local: Path, remote: str) -> None:
        raise NotImplementedError

    def _connect(self) -> None:
        """Check the device is there and read ``facts``; raise DeviceError with what to do if not."""
        raise NotImplementedError

    def _time(self, remote_file: str, threads: int, runs: int, warmup: int) -> dict:
        raise NotImplementedError

    def _turns(self, remote_file: str, remote_reference: str, threads: int, runs: int, warmup: int) -> dict:
        """One in-turns reading of the pair: {"tool", "ratio", "latency_ms_median", "reference_latency_ms_median"}."""
        raise NotImplementedError

    def _cannot_time(self, path: Path) -> str | None:
        """Why this device cannot time ``path`` (a missing runtime, an unsupported format), or None."""
        return None if path.suffix in self.suffixes else f"{self.kind} devices here time {', '.join(self.suffixes)} files"

    # ---- shared
    def __enter__(self) -> "Device":
        self._connect()
        self.remote_dir = self._run(self._mktemp_command()).stdout.strip().splitlines()[-1]
        if not self.remote_dir.startswith(self._private_root()):
            raise DeviceError(f"{self.name}: mktemp answered {self.remote_dir!r}, not a folder under {self._private_root()}")
        try:
            self._prepare()
        except BaseException:  # __exit__ does not run when __enter__ fails: remove the folder here
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.remote_dir:  # the folder this run made, and nothing else
            self._run(f"rm -rf {shlex.quote(self.remote_dir)}", check=False)
            self.remote_dir = None

    def _private_root(self) -> str:
        return "/tmp/"

    def _mktemp_command(self) -> str:
        return f"mktemp -d {self._private_root()}edge-age.XXXXXX"

    def _prepare(self) -> None:
        """Copy the timing tool (once per run)."""

    def time_files(self, files: list[Path], threads: int, runs: int, warmup: int) -> list[dict]:
        """Each file pushed, timed and removed; a file that fails gets a status and the rest go on."""
        results = []
        for path in files:
            reason = self._cannot_time(path)
            if reason:
                results.append({"status": "not measured", "note": reason})
                continue
            remote = f"{self.remote_dir}/{path.name}"
            try:
                self._push(path, remote)
                result = self._time(remote, threads, runs, warmup)
                result.setdefault("status", "measured")
            except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError) as err:
                result = {"status": "failed to run", "note": _reason(err)}
            finally:
                self._run(f"rm -f {shlex.quote(remote)}", check=False)
            results.append(result)
        return results

    def time_in_turns(self, path: Path, reference: Path, threads: int, runs: int, warmup: int,
                      processes: int) -> dict:
        """``path``'s latency as a multiple of ``reference``'s on this device, the two timed in turns in
        ``processes`` readings and summarised as on the host (timing.summarise_turns); a result with a status, as
        ``time_files`` gives. Both files are removed again."""
        reason = self._cannot_time(path) or self._cannot_time(reference)
        if reason:
            return {"status": "not measured", "note": reason}
        remotes = [f"{self.remote_dir}/turns-{number}-{local.name}" for number, local in enumerate((path, reference))]
        try:
            for local, remote in zip((path, reference), remotes):
                self._push(local, remote)
            readings = [self._turns(*remotes, threads, runs, warmup) for _ in range(processes)]
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, ValueError) as err:
            return {"status": "failed to run", "note": _reason(err)}
        finally:
            self._run("rm -f " + " ".join(map(shlex.quote, remotes)), check=False)
        return {"status": "measured", **summarise_turns(readings)}


def _last_line(text: str | bytes | None, default: str = "no output") -> str:
    """The last non-empty line of a tool's output: where ssh, adb and benchmark_model put the reason."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return (lines[-1] if lines else default)[:300]


def _reason(err: Exception) -> str:
    return _last_line(getattr(err, "stderr", None) or getattr(err, "stdout", None) or str(err), type(err).__name__)


# ---------------------------------------------------------------- Linux boards over ssh


@dataclass
class SshDevice(Device):
    host: str = ""
    user: str | None = None
    port: int | None = None
    ssh_config: str | None = None
    python: str = "python3"

    def _ssh_base(self) -> list[str]:
        command = ["ssh", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        if self.ssh_config:
            command += ["-F", self.ssh_config]
        if self.port:
            command += ["-p", str(self.port)]
        return command + [f"{self.user}@{self.host}" if self.user else self.host]

    def _run(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run([*self._ssh_base(), command], capture_output=True, text=True, check=check,
                              timeout=COMMAND_SECONDS)

    def _push(self, local: Path, remote: str) -> None:
        # cat over the same ssh connection settings: no scp/sftp needed on the board
        with open(local, "rb") as handle:
            subprocess.run([*self._ssh_base(), f"cat > {shlex.quote(remote)}"], stdin=handle, capture_output=True,
                           check=True, timeout=COMMAND_SECONDS)

    def _connect(self) -> None:
        if shutil.which("ssh") is None:
            raise DeviceError("ssh is not installed here: apt-get install openssh-client")
        probe = self._run("uname -m", check=False)
        if probe.returncode != 0:
            raise DeviceError(f"{self.name}: cannot reach it over ssh ({_last_line(probe.stderr or probe.stdout)}); "
                              "check the address, your key and known_hosts (ssh must log in without a password)")

    def _prepare(self) -> None:
        self._push(TIMING_SCRIPT, f"{self.remote_dir}/timing.py")
        answer = self._run(f"{shlex.quote(self.python)} {self.remote_dir}/timing.py --facts", check=False)
        if answer.returncode != 0:
            raise DeviceError(f"{self.name}: {self.python} cannot run the timing script ({_last_line(answer.stderr)}); "
                              "it needs Python 3 with numpy: pip install numpy ai-edge-litert onnxruntime")
        self.facts = {"kind": "ssh", **json.loads(answer.stdout.strip().splitlines()[-1])}

    def _cannot_time(self, path: Path) -> str | None:
        package = {".tflite": "ai-edge-litert", ".onnx": "onnxruntime"}.get(path.suffix)
        if package is None:
            return f"boards time .tflite and .onnx files, not {path.suffix}"
        if self.facts.get("versions", {}).get(package) == "not installed":
            return f"{package} is not installed on the board: pip install {package}"
        return None

    def _time(self, remote_file: str, threads: int, runs: int, warmup: int) -> dict:
        answer = self._run(f"{shlex.quote(self.python)} {self.remote_dir}/timing.py {shlex.quote(remote_file)} "
                           f"--threads {threads} --runs {runs} --warmup {warmup}")
        return json.loads(answer.stdout.strip().splitlines()[-1])

    def _turns(self, remote_file: str, remote_reference: str, threads: int, runs: int, warmup: int) -> dict:
        """Both files loaded side by side in one process of the board's Python and timed in turns (timing.py
        --against), as the host times them."""
        answer = self._run(f"{shlex.quote(self.python)} {self.remote_dir}/timing.py {shlex.quote(remote_file)} "
                           f"--against {shlex.quote(remote_reference)} --threads {threads} --runs {runs} "
                           f"--warmup {warmup}")
        return json.loads(answer.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- Android phones over adb


@dataclass
class AdbDevice(Device):
    serial: str | None = None
    benchmark_binary: Path | None = None
    use_gpu: bool = False
    use_nnapi: bool = False
    use_xnnpack: bool = True
    cores: str | None = None  # taskset mask, e.g. f0 for the big cores of a 4+4 phone
    app_stages: bool = False  # also time whole frames in the demo app's benchmark mode

    def _adb(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        command = ["adb", *(["-s", self.serial] if self.serial else []), *args]
        return subprocess.run(command, capture_output=True, text=True, check=check, timeout=COMMAND_SECONDS)

    def _run(self, command: str, check: bool = True) -> subprocess.CompletedProcess:
        return self._adb("shell", command, check=check)

    def _push(self, local: Path, remote: str) -> None:
        self._adb("push", str(local), remote)

    def _private_root(self) -> str:
        return "/data/local/tmp/"

    def _connect(self) -> None:
        if shutil.which("adb") is None:
            raise DeviceError("adb is not installed here: apt-get install adb")
        if self.benchmark_binary is None or not Path(self.benchmark_binary).is_file():
            raise DeviceError(f"--device adb needs {BENCHMARK_MODEL_HELP}"
                              + (f" ({self.benchmark_binary} does not exist)" if self.benchmark_binary else ""))
        attached = parse_adb_devices(self._adb("devices", check=False).stdout)
        ready = [serial for serial, state in attached if state == "device"]
        if self.serial is None:
            if not ready:
                raise DeviceError("no Android device is attached and authorised (adb devices lists none); plug one "
                                  "in with USB debugging on" + (f"; found {attached}" if attached else ""))
            if len(ready) > 1:
                raise DeviceError(f"{len(ready)} devices are attached ({', '.join(ready)}); choose one with "
                                  f"--device adb:SERIAL")
            self.serial = ready[0]
        elif self.serial not in ready:
            raise DeviceError(f"device {self.serial} is not attached and ready (adb devices: {attached or 'none'})")
        props = {key: self._run(f"getprop {key}").stdout.strip() for key in
                 ("ro.product.model", "ro.product.manufacturer", "ro.soc.model", "ro.board.platform",
                  "ro.build.version.release", "ro.product.cpu.abi")}
        self.name = f"adb:{self.serial}"
        self.facts = {"kind": "adb", "serial": self.serial, "model": props["ro.product.model"],
                      "manufacturer": props["ro.product.manufacturer"],
                      "soc": props["ro.soc.model"] or props["ro.board.platform"],
                      "android": props["ro.build.version.release"], "abi": props["ro.product.cpu.abi"],
                      "tool": "LiteRT benchmark_model", "cores": self.cores or "any",
                      "delegate": "gpu" if self.use_gpu else "nnapi" if self.use_nnapi else
                                  "xnnpack" if self.use_xnnpack else "cpu"}
        binary_abi = elf_abi(Path(self.benchmark_binary))
        if binary_abi != self.facts["abi"] and not (binary_abi == "armeabi-v7a" and self.facts["abi"] == "arm64-v8a"):
            raise DeviceError(f"{self.benchmark_binary} is built for {binary_abi or 'no Android ABI'}, the phone is "
                              f"{self.facts['abi']}: supply {BENCHMARK_MODEL_HELP}")

    def _prepare(self) -> None:
        self._push(Path(self.benchmark_binary), f"{self.remote_dir}/benchmark_model")
        self._run(f"chmod 755 {self.remote_dir}/benchmark_model")

    def _time(self, remote_file: str, threads: int, runs: int, warmup: int) -> dict:
        flags = [f"--graph={remote_file}", f"--num_threads={threads}", f"--num_runs={runs}",
                 f"--warmup_runs={warmup}", f"--use_xnnpack={'true' if self.use_xnnpack else 'false'}"]
        if self.use_gpu:
            flags.append("--use_gpu=true")
        if self.use_nnapi:
            flags.append("--use_nnapi=true")
        pin = f"taskset {self.cores} " if self.cores else ""
        answer = self._run(f"{pin}{self.remote_dir}/benchmark_model {' '.join(flags)}", check=False)
        parsed = parse_benchmark_model(answer.stdout + answer.stderr)
        if answer.returncode != 0 or parsed.get("latency_ms_mean") is None:
            raise ValueError(parsed.get("error") or _last_line(answer.stderr or answer.stdout))
        return {"tool": "LiteRT benchmark_model", "threads": threads, "model_only": True, **parsed}

    def _turns(self, remote_file: str, remote_reference: str, threads: int, runs: int, warmup: int) -> dict:
        """benchmark_model loads one model: the two files are timed by one process each, one right after the
        other, so a reading's two processes see the phone at nearly the same temperature and clock."""
        mine, theirs = (self._time(remote, threads, runs, warmup) for remote in (remote_file, remote_reference))
        mine_ms, theirs_ms = (r["latency_ms_median"] if r.get("latency_ms_median") is not None else r["latency_ms_mean"]
                              for r in (mine, theirs))
        return {"tool": "LiteRT benchmark_model, one process per file, in turns", "threads": threads,
                "latency_ms_median": mine_ms, "reference_latency_ms_median": theirs_ms, "ratio": mine_ms / theirs_ms}


APP_PACKAGE = "dev.edgeage.demo"
APP_LOG_TAG = "EdgeAgeBench"
APP_LOG_PREFIX = "EDGE_AGE_BENCH "  # android_demo/core StageTimer.LOG_PREFIX


def app_stage_times(device: AdbDevice, model_names: list[str], faces_file: Path, runs: int, threads: int,
                    wait_seconds: int = 300) -> dict[str, dict]:
    """The demo app's benchmark mode (BenchmarkActivity) on each of its installed model files: the stages of a
    whole frame in the app's own code (crop, tensor, inference, decode), read back from logcat."""
    import time

    remote = f"/sdcard/Android/data/{APP_PACKAGE}/files/edge-age-bench"
    device._run(f"mkdir -p {remote}")
    found = {}
    try:
        device._push(faces_file, f"{remote}/faces.json")
        for name in model_names:
            device._adb("logcat", "-c")
            device._run(f"am start -W -n {APP_PACKAGE}/.BenchmarkActivity --es model {shlex.quote(name)} "
                        f"--es faces {remote}/faces.json --ei runs {runs} --ei threads {threads}")
            deadline = time.monotonic() + wait_seconds
            result = None
            while result is None and time.monotonic() < deadline:
                result = parse_app_stages(device._adb("logcat", "-d", "-s", APP_LOG_TAG).stdout)
                if result is None:
                    time.sleep(1)
            found[name] = result or {"error": f"no {APP_LOG_PREFIX.strip()} line in logcat after {wait_seconds} s: is "
                                              "the demo app (with this model in its assets) installed?"}
    finally:
        device._run(f"rm -rf {remote}", check=False)
    return found


def parse_app_stages(logcat: str) -> dict | None:
    """The last benchmark-mode line of a logcat dump, as a dict (None when there is none yet)."""
    lines = [line for line in logcat.splitlines() if APP_LOG_PREFIX in line]
    if not lines:
        return None
    return json.loads(lines[-1].split(APP_LOG_PREFIX, 1)[1])


def parse_adb_devices(text: str) -> list[tuple[str, str]]:
    """``adb devices`` output -> [(serial, state)], state being device, unauthorized, offline, ..."""
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(("List of devices", "*")):
            found.append((parts[0], parts[1]))
    return found


def elf_abi(path: Path) -> str | None:
    """The Android ABI an ELF executable is built for, from its header's e_machine; None if not ELF."""
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF" or len(header) < 20:
        return None
    little = header[5] == 1
    machine = int.from_bytes(header[18:20], "little" if little else "big")
    return ELF_MACHINES.get(machine, f"ELF machine {machine}")


_NUMBER = r"([0-9.]+(?:e[+-]?[0-9]+)?)"


def parse_benchmark_model(text: str) -> dict:
    """What LiteRT's benchmark_model prints, as numbers in ms and MB: init, first inference, warm-up and steady
    averages, min/max/std (and median/p5/p95 when printed) of the timed runs, peak memory, and the delegate
    coverage from its "Replacing N out of M node(s) with delegate (NAME) node, yielding K partitions" line (or,
    where a delegate prints only "Explicitly applied X delegate, and the model graph will be completely executed",
    from that)."""
    result: dict = {}
    summary = re.search(rf"Inference timings in us: Init: {_NUMBER}, First inference: {_NUMBER}, "
                        rf"Warmup \(avg\): {_NUMBER}, Inference \(avg\): {_NUMBER}", text)
    if summary:
        init, first, warmup, steady = (float(v) / 1000 for v in summary.groups())
        result.update(load_ms=init, first_inference_ms=first, warmup_ms_mean=warmup, latency_ms_mean=steady)
    runs = re.findall(rf"count=(\d+) first=\d+ curr=\d+ min={_NUMBER} max={_NUMBER} avg={_NUMBER} std={_NUMBER}"
                      rf"(?: p5={_NUMBER} median={_NUMBER} p95={_NUMBER})?", text)
    if runs:  # the last such line is the timed run (the first is the warm-up)
        count, low, high, _, std, p5, median, p95 = runs[-1]
        result.update(runs=int(count), latency_ms_min=float(low) / 1000, latency_ms_max=float(high) / 1000,
                      latency_ms_std=float(std) / 1000)
        if median:
            result.update(latency_ms_median=float(median) / 1000, latency_ms_p5=float(p5) / 1000,
                          latency_ms_p95=float(p95) / 1000)
    memory = (re.search(rf"Peak memory footprint \(MB\): init={_NUMBER} overall={_NUMBER}", text)
              or re.search(rf"Memory footprint delta from the start of the tool \(MB\): init={_NUMBER} overall={_NUMBER}",
                           text))
    if memory:
        result.update(init_memory_mb=float(memory.group(1)), peak_memory_mb=float(memory.group(2)))
    delegated = re.search(r"Replacing (\d+) out of (\d+) node\(s\) with delegate \(([^)]+)\) node"
                          r"(?:, yielding (\d+) partitions)?", text)
    if delegated:
        nodes, total = int(delegated.group(1)), int(delegated.group(2))
        result["delegate"] = {"name": delegated.group(3), "nodes": nodes, "of": total,
                              "coverage": nodes / total if total else 0.0,
                              "partitions": int(delegated.group(4)) if delegated.group(4) else None}
    applied = re.search(r"Explicitly applied (\S+) delegate, and the model graph will be (completely|partially) "
                        r"executed by the delegate(?: w/ (\d+) delegate kernels)?", text)
    if applied and "delegate" not in result:  # some delegates (GPU) print no "Replacing" line
        result["delegate"] = {"name": applied.group(1), "nodes": None, "of": None,
                              "coverage": 1.0 if applied.group(2) == "completely" else None,
                              "partitions": 1 if applied.group(2) == "completely" else
                              (int(applied.group(3)) if applied.group(3) else None)}
    if "will not be executed by the delegate" in text or "falling back" in text.lower():
        result.setdefault("delegate", {})["fell_back"] = True
    failure = (re.search(r"((?:Failed to|Unsupported) [^\n]*)", text) or re.search(r"ERROR:\s*([^\n]*)", text))
    if failure and "latency_ms_mean" not in result:
        result["error"] = failure.group(1).strip()[:300]
    return result


def open_device(spec: str, ssh_config: str | None = None, python: str = "python3",
                benchmark_binary: str | None = None, use_gpu: bool = False, use_nnapi: bool = False,
                cores: str | None = None, app_stages: bool = False) -> Device:
    """``adb``, ``adb:SERIAL`` or ``ssh://[user@]host[:port]`` -> a device (not yet connected)."""
    if spec == "adb" or spec.startswith("adb:"):
        serial = spec[4:] or None
        return AdbDevice(name=spec, kind="adb", suffixes=(".tflite",), serial=serial,
                         benchmark_binary=Path(benchmark_binary) if benchmark_binary else None, use_gpu=use_gpu,
                         use_nnapi=use_nnapi, cores=cores, app_stages=app_stages)
    if spec.startswith("ssh://"):
        parsed = urlparse(spec)
        if not parsed.hostname:
            raise ValueError(f"--device {spec}: no host; write ssh://[user@]host[:port]")
        return SshDevice(name=spec, kind="ssh", suffixes=(".tflite", ".onnx"), host=parsed.hostname,
                         user=parsed.username, port=parsed.port, ssh_config=ssh_config, python=python)
    raise ValueError(f"--device {spec!r}: use adb, adb:SERIAL or ssh://[user@]host[:port]")
