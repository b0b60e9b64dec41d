"""The training side: float Spikeformer models, data, surrogate-gradient training and quantization.

The only package that imports torch. Quantization ends in an integer model and an export
directory written through :mod:`contract` (the integer contract), which everything after
training reads.
"""
