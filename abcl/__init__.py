"""abcl: reproduce the appendix figures of the ABCL paper (Zhao, Yang, Su, Zheng).

Modules, one concern each: ``data``, ``models``, ``losses``, ``attacks``,
``train``, ``evaluate``, ``embed``, ``figures``, ``config``, ``records``
(provenance and atomic files) and ``cli``.
"""

__version__ = "0.1.0"


class ABCLError(Exception):
    """An error whose message is meant for the user: one line, naming the problem."""
