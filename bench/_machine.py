"""Where and when a benchmark ran: the machine-info block every ``bench/*.py`` JSON carries."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    try:
        return subprocess.run(['git', *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ''


def _cpu_model() -> str:
    try:
        return next(line.split(':', 1)[1].strip() for line in Path('/proc/cpuinfo').read_text().splitlines()
                    if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.processor()


def speed_probe(repeats: int = 9) -> float:
    """Median ms of a fixed single-threaded numpy workload: how fast this machine runs right now.

    The machines are shared and their speed swings by up to ~1.5x from one hour to the next, so a run's
    own numbers cannot say whether a slow result is the code or the machine; the same probe recorded
    with every run can. The mix is that of the lifting code: large-array passes (sort, elementwise
    arithmetic, boolean masks) and many calls on small arrays, where numpy's per-call cost dominates.
    No BLAS and no OpenCV, whose thread counts differ between processes.
    """
    import numpy as np

    rng = np.random.default_rng(0)
    big = rng.random(300_000, dtype=np.float32)
    small = rng.random(1000, dtype=np.float32)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        np.sort(big)
        m = (big * np.float32(2.0) + np.float32(1.0)) > np.float32(2.0)
        np.flatnonzero(m)
        for _ in range(300):
            np.count_nonzero((small * np.float32(3.0)) < np.float32(1.0))
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def machine_info() -> dict:
    """Platform, CPU, load average, memory, versions, date, git commit and :func:`speed_probe` now."""
    import numpy
    return {
        'speed_probe_ms': round(speed_probe(), 2),
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'platform': platform.platform(), 'cpu': _cpu_model(), 'cpu_count': os.cpu_count(),
        'load_average': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
        'memory_gb': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1),
        'python': platform.python_version(), 'numpy': numpy.__version__,
        'git_commit': _git('rev-parse', '--short', 'HEAD'),
        'uncommitted_changes': bool(_git('status', '--porcelain', '--untracked-files=no')),
    }
