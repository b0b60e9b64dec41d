"""The integer contract: what the golden model exports and the accelerator computes (numpy only).

* :mod:`contract.numerics` -- the one definition of the integer semantics (LIF, thresholds,
  widths, bit planes) that the float model's fake quantization, the RTL and the docs follow;
* :mod:`contract.intmodel` -- the integer model: its ops, shape inference, the bit-accurate
  executor, input quantization and per-layer trace comparison;
* :mod:`contract.overflow` -- worst-case accumulator and membrane ranges of an integer model;
* :mod:`contract.manifest` -- the export directory (manifest, integer tensors, test vectors):
  writing, loading and checking it;
* :mod:`contract.checks` -- the integer argument check (and its one message shape) of every
  parameter object;
* :mod:`contract.files` -- atomic file writes, used by every layer that writes files.

Nothing here imports torch or Amaranth: the training side (:mod:`golden`) writes exports
through this package, the accelerator's protocol (:mod:`protocol`), RTL (:mod:`hw`),
testbenches (:mod:`sim`) and the board driver (:mod:`host`) read them through it.
"""
