"""Golden model: float Spikeformer (training), quantization and the integer reference."""
