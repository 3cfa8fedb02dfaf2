"""Where and when a benchmark ran: the machine-info block every ``bench/*.py`` JSON carries."""
from __future__ import annotations

import datetime
import os
import platform
import subprocess
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


def machine_info() -> dict:
    """Platform, CPU model and count, load average, memory, Python/numpy versions, date and git commit."""
    import numpy
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
        'platform': platform.platform(), 'cpu': _cpu_model(), 'cpu_count': os.cpu_count(),
        'load_average': list(os.getloadavg()) if hasattr(os, 'getloadavg') else None,
        'memory_gb': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30, 1),
        'python': platform.python_version(), 'numpy': numpy.__version__,
        'git_commit': _git('rev-parse', '--short', 'HEAD'),
        'uncommitted_changes': bool(_git('status', '--porcelain', '--untracked-files=no')),
    }
