"""Suite-wide settings.

The suite runs under pytest-xdist with one worker per core; more than one intra-op
thread per worker oversubscribes the cores and makes every torch op several times
slower, so each worker uses a single thread.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
