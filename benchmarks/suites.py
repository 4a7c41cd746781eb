"""The layer tables live in the package (``cnnkern.suites``) so that the installed
``cnnkern`` command can run them; this module keeps the benchmarks' import path."""
from cnnkern.suites import QUICK, SOURCES, SUITES, Layer, layer, layers  # noqa: F401
