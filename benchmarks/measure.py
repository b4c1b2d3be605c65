"""Run one command and measure it: wall time, peak resident memory of its largest process, and on
a GPU the peak memory ``nvidia-smi`` saw.  Each command runs under a fresh wrapper process so that
the peak belongs to that command alone."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

_WRAPPER = r"""
import json, resource, subprocess, sys, time
started = time.time()
code = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1], 'a'), stderr=subprocess.STDOUT)
print(json.dumps({'returncode': code, 'seconds': time.time() - started,
                  'peak_rss_mb': resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


@dataclass
class Measurement:
    command: str
    returncode: int
    seconds: float
    peak_rss_mb: float
    peak_gpu_mb: Optional[float] = None
    log: str = ""

    def to_dict(self) -> Dict:
        return asdict(self)


class GpuPoller(threading.Thread):
    """Highest ``memory.used`` that nvidia-smi reports while a command runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak = 0.0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.peak = max([self.peak] + [float(v) for v in out.split()])
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return
            time.sleep(0.5)


def measure(command: List[str], log: Path, env: Optional[Dict[str, str]] = None, gpu: bool = False,
            check: bool = True) -> Measurement:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as f:
        f.write(f"\n$ {shlex.join(command)}\n")
    poller = GpuPoller() if gpu else None
    if poller:
        poller.start()
    out = subprocess.run([sys.executable, "-c", _WRAPPER, str(log), *command], capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if poller:
        poller.stop.set()
    stats = json.loads(out.stdout.strip().splitlines()[-1])
    result = Measurement(shlex.join(command), stats["returncode"], stats["seconds"], stats["peak_rss_mb"],
                         poller.peak if poller else None, str(log))
    if check and result.returncode != 0:
        tail = "".join(open(log).readlines()[-15:])
        raise RuntimeError(f"command failed ({result.returncode}): {result.command}\n{tail}")
    return result
