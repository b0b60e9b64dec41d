"""The integer model: ops, shape inference, bit-accurate execution, input quantization, traces.

* :mod:`.ops` -- :class:`Op`, the op kinds (:data:`OP_KINDS`, :data:`LIF_KINDS`,
  :data:`GROUPINGS`) and :class:`IntModelError`;
* :mod:`.shapes` -- shape inference and the width checks of an op graph;
* :mod:`.executor` -- the integer execution of each op kind and the attention token grouping;
* :mod:`.inputs` -- :func:`quantize_input`, the model's integer input;
* :mod:`.traces` -- :func:`compare_traces`: the first difference between two traces;
* :mod:`.model` -- :class:`IntModel`, which ties them together.

Importers use the names re-exported here.
"""

from .executor import group_tokens, ungroup_tokens
from .inputs import quantize_input
from .model import IntModel
from .ops import GROUPINGS, LIF_KINDS, OP_KINDS, IntModelError, Op
from .traces import Mismatch, assert_traces_equal, compare_traces

__all__ = [
    "GROUPINGS",
    "LIF_KINDS",
    "OP_KINDS",
    "IntModel",
    "IntModelError",
    "Mismatch",
    "Op",
    "assert_traces_equal",
    "compare_traces",
    "group_tokens",
    "quantize_input",
    "ungroup_tokens",
]
