#!/usr/bin/env python3
"""Image upload and download in constant memory: phoenix against curl on the same file, over loopback.

A file of real (random, not sparse) data is made once.  Upload: phoenix's streaming multipart
upload (``phoenix.pve.upload.upload_file``, what template provisioning uses) and ``curl -F`` post
the file to the in-process simulator's ``/storage/local/upload`` (HTTPS, token; the simulator
streams it to disk).  Download: phoenix's ``download_verified`` (resumable, sha256 checked while
streaming, fsynced) and ``curl -o`` fetch it from a ``python -m http.server`` on 127.0.0.1.  Each
tool runs as its own process; reported: seconds, MiB/s and the process's peak RSS (VmHWM).
phoenix's seconds are its own transfer (measured inside the child, after imports), curl's its
whole run (its start-up is ~10 ms).  Both progress outputs go to a pipe (no terminal): phoenix
prints a line per 10 %.

    python bench/image_transfer.py               # 1 GiB, 2 runs each
    python bench/image_transfer.py --quick       # 128 MiB, 1 run
    python bench/image_transfer.py --size-mib 4096
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ROOT, median, print_table, run_measured, start_server, write_results  # noqa: E402

TARGET_RSS_MB = 100.0
TARGET_SHARE_OF_CURL = 0.9

PHOENIX_UPLOAD = """
import json, sys, time
from pathlib import Path
from phoenix.pve.client import PVEClient
from phoenix.pve.settings import ConnectionSettings
from phoenix.pve.upload import upload_file
from phoenix.template.report import Reporter
client = PVEClient.connect(ConnectionSettings.from_env())
reporter = Reporter()
started = time.perf_counter()
with reporter.progress("uploading bench.qcow2") as advance:
    upload_file(client, "pve", "local", Path(sys.argv[1]), "bench.qcow2", {"content": "import"}, progress=advance)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""

PHOENIX_DOWNLOAD = """
import json, sys, time
from pathlib import Path
from phoenix.template.checksum import Checksum
from phoenix.template.download import download_verified
from phoenix.template.report import Reporter
reporter = Reporter()
started = time.perf_counter()
with reporter.progress("downloading bench.img") as advance:
    download_verified(sys.argv[1], Path(sys.argv[2]), Checksum("sha256", sys.argv[3]), progress=advance)
print(json.dumps({"seconds": time.perf_counter() - started}))
"""


def make_image(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as out:
        left = size
        while left:
            block = os.urandom(min(left, 4 << 20))
            out.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def _settle() -> None:
    """Start each measured transfer with no write-back pending: the 1 GiB the previous one stored
    would otherwise still be flushing to disk and throttle whichever transfer comes next (it made
    phoenix's download, which followed curl's upload, look half as fast as curl's)."""
    os.sync()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def measure(size_mib: int, runs: int) -> list[dict]:
    size = size_mib << 20
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="phoenix-bench-image-") as tmp:
        work = Path(tmp)
        image = work / "serve" / "bench.img"
        image.parent.mkdir()
        digest = make_image(image, size)
        server = start_server(work / "sim", ["pve"], task_scale=0.0)
        http = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                                 "--directory", str(image.parent), str(port := free_port())],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            env = {**os.environ, "PROXMOX_VE_ENDPOINT": server.endpoint, "PROXMOX_VE_API_TOKEN": server.api_token,
                   "PROXMOX_VE_CA_FILE": str(server.ca_file), "PYTHONPATH": str(ROOT)}
            upload_url = f"{server.endpoint}/api2/json/nodes/pve/storage/local/upload"
            stored = server.sim.storage_dir("local") / "import" / "bench.qcow2"
            url = f"http://127.0.0.1:{port}/bench.img"
            _wait_for(url)
            for _ in range(runs):
                stored.unlink(missing_ok=True)
                _settle()
                run = run_measured([sys.executable, "-c", PHOENIX_UPLOAD, str(image)], env=env, cwd=work).check()
                rows.append(_row("upload", "phoenix", size, json.loads(run.stdout.splitlines()[-1])["seconds"],
                                 run.max_rss_mb, run.stderr.count("%")))
                _check_same(stored, size)
                stored.unlink(missing_ok=True)
                _settle()
                run = run_measured(["curl", "-sS", "--fail", "--cacert", str(server.ca_file), "-H",
                                    f"Authorization: PVEAPIToken={server.api_token}", "-F", "content=import",
                                    "-F", f"filename=@{image};filename=bench.qcow2", upload_url], cwd=work).check()
                _wait_for_file(stored, size)
                rows.append(_row("upload", "curl", size, run.seconds, run.max_rss_mb, 0))
                stored.unlink(missing_ok=True)
                dest = work / "cache" / "bench.img"
                shutil.rmtree(dest.parent, ignore_errors=True)
                _settle()
                run = run_measured([sys.executable, "-c", PHOENIX_DOWNLOAD, url, str(dest), digest], env=env,
                                   cwd=work).check()
                rows.append(_row("download", "phoenix", size, json.loads(run.stdout.splitlines()[-1])["seconds"],
                                 run.max_rss_mb, run.stderr.count("%")))
                dest.unlink(missing_ok=True)
                _settle()
                run = run_measured(["curl", "-sS", "--fail", "-o", str(dest), url], cwd=work).check()
                rows.append(_row("download", "curl", size, run.seconds, run.max_rss_mb, 0))
                dest.unlink(missing_ok=True)
        finally:
            http.terminate()
            http.wait(timeout=10)
            server.stop()
    return rows


def _row(direction: str, tool: str, size: int, seconds: float, rss: float, progress_lines: int) -> dict:
    return {"direction": direction, "tool": tool, "mib": size >> 20, "seconds": round(seconds, 3),
            "mib_per_s": round((size >> 20) / seconds, 1), "max_rss_mb": round(rss, 1),
            "progress_lines": progress_lines}


def _check_same(path: Path, size: int) -> None:
    if not path.exists() or path.stat().st_size != size:
        raise RuntimeError(f"upload did not arrive whole: {path}")


def _wait_for_file(path: Path, size: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size == size:
            return
        time.sleep(0.05)
    raise RuntimeError(f"{path} did not appear")


def _wait_for(url: str, timeout: float = 20) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.head(url, timeout=2)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def summarise(rows: list[dict]) -> list[dict]:
    summary = []
    for direction in ("upload", "download"):
        best = {tool: median([r["mib_per_s"] for r in rows if r["direction"] == direction and r["tool"] == tool])
                for tool in ("phoenix", "curl")}
        rss = {tool: max(r["max_rss_mb"] for r in rows if r["direction"] == direction and r["tool"] == tool)
               for tool in ("phoenix", "curl")}
        share = best["phoenix"] / best["curl"] if best["curl"] else 0.0
        summary.append({"direction": direction, "phoenix_mib_s": best["phoenix"], "curl_mib_s": best["curl"],
                        "share_of_curl": round(share, 3), "phoenix_rss_mb": rss["phoenix"], "curl_rss_mb": rss["curl"],
                        "ok": rss["phoenix"] <= TARGET_RSS_MB and share >= TARGET_SHARE_OF_CURL})
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=None, help="image size (default 1024; --quick 128)")
    parser.add_argument("--runs", type=int, default=None, help="runs per tool and direction (default 2; --quick 1)")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if shutil.which("curl") is None:
        parser.error("curl is needed as the reference (apt-get install -y curl)")
    size = args.size_mib or (128 if args.quick else 1024)
    runs = args.runs or (1 if args.quick else 2)
    rows = measure(size, runs)
    summary = summarise(rows)
    path = write_results("image_transfer", {"rows": rows, "summary": summary})
    print_table(["direction", "tool", "MiB", "s", "MiB/s", "peak RSS MB", "progress lines"],
                [[r["direction"], r["tool"], r["mib"], r["seconds"], r["mib_per_s"], r["max_rss_mb"],
                  r["progress_lines"]] for r in rows])
    print()
    print_table(["direction", "phoenix MiB/s", "curl MiB/s", "phoenix/curl", "phoenix RSS MB", "curl RSS MB", "ok"],
                [[s["direction"], s["phoenix_mib_s"], s["curl_mib_s"], f"{s['share_of_curl']:.2f}x",
                  s["phoenix_rss_mb"], s["curl_rss_mb"], "yes" if s["ok"] else "NO"] for s in summary])
    print(f"\nresults: {path}")
    return 0 if all(s["ok"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
