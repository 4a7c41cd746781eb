"""The benchmark suite behind ``python -m cnnkern bench``.

``device`` picks the machine and its roofs, ``runner`` checks and times every
algorithm (and PyTorch, when installed) on the layer tables of ``cnnkern.suites``,
``schema`` defines and validates the results document, ``report`` prints it as a
table and ``plot`` draws it. The package imports nothing optional at import time.
"""
from .runner import run_suite, select_layers  # noqa: F401
from .schema import SCHEMA, validate  # noqa: F401
