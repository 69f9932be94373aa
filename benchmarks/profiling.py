"""``--profile``: sample a server with py-spy while wrk measures it, and summarise.

py-spy (``pip install py-spy``, not in requirements.txt) attaches to the
server's PID without pausing it (``--nonblocking``), so the run's numbers stay
comparable, and samples only the thread holding the GIL (``--gil``): the
Python work that limits a single process, whichever thread does it.  The
summary lists the functions by inclusive and by own share of the samples,
with their files, which is what a slow path shows up as.
"""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
from typing import Optional

SLACK = 30.0


def find_py_spy(python: str) -> Optional[str]:
    beside = os.path.join(os.path.dirname(python), "py-spy")
    return beside if os.access(beside, os.X_OK) else shutil.which("py-spy")


class Sampler:
    """py-spy recording ``pid`` for ``seconds`` into ``raw_path`` (folded stacks)."""

    def __init__(self, py_spy: str, pid: int, seconds: int, raw_path: str, rate: int = 200) -> None:
        self.raw_path = raw_path
        self.seconds = seconds
        self.process = subprocess.Popen(
            [py_spy, "record", "--nonblocking", "--gil", "--pid", str(pid), "--duration", str(seconds),
             "--rate", str(rate), "--format", "raw", "--output", raw_path],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )

    def finish(self) -> Optional[str]:
        """Wait for py-spy; the summary's text, or None if it recorded nothing."""
        try:
            _, stderr = self.process.communicate(timeout=self.seconds + SLACK)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate(timeout=SLACK)
            return None
        if not os.path.exists(self.raw_path):
            return f"py-spy recorded nothing: {stderr.strip()[-500:]}"
        return summarise(self.raw_path)


def _name(frame: str) -> str:
    function, _, where = frame.partition(" (")
    path = where.split(":")[0]
    for marker in ("site-packages/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    else:
        path = path.replace(os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + "/", "")
    return f"{function} ({path})" if where else function


def summarise(raw_path: str, top: int = 40) -> str:
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    with open(raw_path) as raw:
        for line in raw:
            stack, _, count = line.rstrip("\n").rpartition(" ")
            if not stack or not count.isdigit():
                continue
            samples = int(count)
            total += samples
            frames = [_name(frame) for frame in stack.split(";")]
            for frame in set(frames):
                inclusive[frame] += samples
            own[frames[-1]] += samples
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "inclusive:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", "own:"]
    lines += [f"{100 * n / total:5.1f}%  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines) + "\n"
