"""The accelerator's RTL (Amaranth), built from the tables of :mod:`protocol`.

:mod:`hw.accel.top` (AXI) around :mod:`hw.accel.core` (sequencer, memories), the engines
:mod:`~hw.accel.transfer`, :mod:`~hw.accel.conv`, :mod:`~hw.accel.elementwise`,
:mod:`~hw.accel.attention`, :mod:`~hw.accel.head`, the shared :mod:`~hw.accel.lifunit`,
:mod:`~hw.accel.serial_synapse`, the two-bank :mod:`~hw.accel.banked` memories, the helpers
:mod:`~hw.accel.loops`, :mod:`~hw.accel.ports` and :mod:`~hw.accel.layouts` (Amaranth views of
the protocol's descriptor table), and :mod:`hw.accel.generate` (Verilog and its description).

The configuration, register map, descriptor format, compiler and cycle model are pure
Python in :mod:`protocol`; simulation, lint and synthesis of the top are in :mod:`sim.accel`.
"""
