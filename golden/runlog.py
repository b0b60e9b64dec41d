"""Run records: console/file logging and the per-epoch metrics tables (CSV and JSON).

Metric rows are flat dicts of numbers plus a ``firing_rates`` dict; the CSV spreads the
firing rates into one ``fr:<layer>`` column per LIF layer, the JSON keeps them nested and
adds the run's resolved configuration. Files are written whole to a temporary name and
renamed, so a reader never sees half a table.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from contract.files import atomic_path, atomic_write

__all__ = ["setup_logging", "write_metrics", "write_json", "TIME_KEYS", "USER_ERRORS", "print_user_error"]

PathLike = str | os.PathLike[str]

# Wall-clock fields: the only metrics that differ between a resumed and a straight run.
TIME_KEYS = ("epoch_time_s", "elapsed_s")

# Errors that mean "the request was wrong" (bad option, unknown preset, missing or corrupt
# file): the command-line tools print their message instead of a traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, KeyError, FileNotFoundError)


def print_user_error(exc: BaseException, *, prog: str) -> int:
    """Print ``prog: error: message`` to stderr and return the exit status 2 (argparse's)."""
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def setup_logging(
    name: str, *, main: bool, log_file: PathLike | None = None, append: bool = False
) -> logging.Logger:
    """Log INFO to stderr (and ``log_file``, appended or restarted) on the main rank, warnings elsewhere."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO if main else logging.WARNING)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    fmt = logging.Formatter("%(asctime)s %(message)s", datefmt="%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if main and log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(log_file, mode="a" if append else "w")
        handler.setFormatter(fmt)
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def _finite(value: Any) -> Any:
    # JSON has no NaN/inf; a layer that never ran has no rate, so it is written as null.
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def write_json(path: PathLike, payload: Mapping[str, Any]) -> Path:
    """Pretty, key-ordered JSON with NaN written as ``null``."""
    return atomic_write(path, json.dumps(_finite(dict(payload)), indent=2) + "\n")


def write_metrics(
    history: Sequence[Mapping[str, Any]],
    csv_path: PathLike,
    json_path: PathLike,
    *,
    header: Mapping[str, Any],
) -> None:
    """Write the per-epoch ``history`` as CSV (flat) and JSON (``header`` + ``epochs``)."""
    scalar_keys: list[str] = []
    layers: list[str] = []
    for row in history:
        for key, value in row.items():
            if key == "firing_rates":
                layers.extend(n for n in value if n not in layers)
            elif key not in scalar_keys:
                scalar_keys.append(key)
    columns = scalar_keys + [f"fr:{n}" for n in layers]
    lines: list[list[Any]] = []
    for row in history:
        rates = row.get("firing_rates", {})
        lines.append([row.get(k, "") for k in scalar_keys] + [rates.get(n, "") for n in layers])
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(columns)
        writer.writerows(lines)
    write_json(json_path, {**header, "epochs": list(history)})
