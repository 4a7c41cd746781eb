"""Backends: one package per kind of machine code (numpy reference, numba, cuda).

Each package registers its algorithms in :mod:`cnnkern.registry` when imported and may
define ``unavailable_reason()`` returning why it cannot run on this machine.
"""
