"""Shared plumbing of PEM-RT: the project error type, atomic file writes and the `pem` command.

Torch-free and dependency-free, so every stage (the edge runtime included) can import it.
"""

from pem_rt.errors import PemError

__all__ = ["PemError"]
