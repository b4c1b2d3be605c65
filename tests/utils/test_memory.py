"""Large blocks mapped on their own: freed memory leaves the resident set, however the heap is cut up."""
import subprocess
import sys
import textwrap

import pytest

# Big blocks freed between small ones that stay: with glibc's default the big ones come to live in
# the heap after the first is freed, and the heap cannot shrink past the small ones.
PROGRAM = textwrap.dedent("""
    import sys
    import numpy as np
    from nnocc.utils.memory import map_large_blocks_separately
    def rss():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS"))
    took = map_large_blocks_separately() if sys.argv[1] == "set" else None
    np.ones(16 * 2 ** 20, np.uint8)      # freed at once: glibc raises its threshold to 16 MB
    start = rss()
    big, small = [], []
    for i in range(40):
        big.append(np.ones((4 + i % 3) * 2 ** 20, np.uint8))
        small.append(np.ones(4096, np.uint8))
    del big
    print(took, rss() - start)
""")


def _grown_mb(mode: str):
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True)
    took, grown = out.stdout.split()
    return took, float(grown)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_large_blocks_leave_the_resident_set():
    took, grown = _grown_mb("set")
    if took != "True":
        pytest.skip("this C library has no mallopt")
    _, grown_by_default = _grown_mb("default")
    assert grown < 10
    assert grown_by_default > 100      # the control: without the setting the 200 MB stay

