"""Bridges from other SNN frameworks to the project's models.

:mod:`golden.interop.spikingjelly` converts SpikingJelly's Spikformer. The framework
itself is imported only when a converter runs, so this package imports without it.
"""
