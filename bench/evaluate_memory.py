"""Peak memory of `mgr evaluate` against the number of users decoded (it must not grow:
predictions are streamed to disk, metrics are running means).

    .venv/bin/python bench/evaluate_memory.py build/demo/runs/tiger-text build/demo/tok/tiger-text.safetensors

Runs evaluate as a subprocess for each user count and prints its peak RSS; the last line
is the ratio between the largest and the smallest count's peak.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile


def peak_rss_mib(run: str, tok: str, users: int) -> float:
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "mgr_cli", "evaluate", run, tok, "-o", d, "--limit",
                        str(users)], check=True, capture_output=True)
        # RUSAGE_CHILDREN is the max over children so far: run the smallest first
        return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    run, tok = sys.argv[1], sys.argv[2]
    counts = [300, 3000]
    peaks = [peak_rss_mib(run, tok, n) for n in counts]
    for n, p in zip(counts, peaks):
        print(f"{n:6d} users: peak RSS {p:7.0f} MiB")
    print(f"peak memory ratio, {counts[-1]} vs {counts[0]} users: {peaks[-1] / peaks[0]:.3f} (target: ~1)")


if __name__ == "__main__":
    main()
