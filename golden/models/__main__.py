"""``python -m golden.models [PRESET ...]``: list model presets with their parameter counts."""

from __future__ import annotations

import argparse

import torch

from . import create_model, list_models
from .common import count_parameters


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m golden.models", description=__doc__)
    parser.add_argument(
        "presets",
        nargs="*",
        metavar="PRESET",
        help=f"presets to list (default: all of {', '.join(list_models())})",
    )
    args = parser.parse_args(argv)
    names = args.presets or list_models()
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; known presets: {', '.join(list_models())}")
    print(f"{'preset':<24}{'params':>12}  {'input [T, C, H, W]':<22}{'tokens':>7}{'classes':>8}")
    for name in names:
        with torch.device("meta"):  # shapes only: no memory, no initialisation cost
            model = create_model(name)
        cfg = model.cfg
        shape = f"[{cfg.timesteps}, {cfg.in_channels}, {cfg.img_size}, {cfg.img_size}]"
        print(f"{name:<24}{count_parameters(model):>12,}  {shape:<22}{cfg.num_tokens:>7}{cfg.num_classes:>8}")


if __name__ == "__main__":
    main()
