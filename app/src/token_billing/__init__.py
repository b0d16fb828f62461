"""Token billing service.

The version lives here and only here: pyproject reads it (setuptools dynamic
version), the CLI prints it and the HTTP API reports it.
"""

__version__ = "1.3.1"

__all__ = ["__version__"]
