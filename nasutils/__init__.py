"""nasutils: the logic behind the reproducible companion to an RL-based analog NAS report.

Modules, one concept each: ``data`` (the measured dataset), ``space`` (architecture
search spaces), ``profiles`` (named parameter sets), ``notebook`` (helpers that the
book's notebooks call), ``plots`` and ``cli`` (the ``nasutils`` command).
"""

__version__ = "0.1.0"
