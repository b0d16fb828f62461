"""conda-compatible exceptions (names, messages, JSON dump shape)."""
from __future__ import annotations


class CondaError(Exception):
    return_code = 1
    module = "conda.exceptions"

    def __init__(self, message: str, caused_by=None, **kwargs):
        self.message = message
        self._kwargs = kwargs
        self._caused_by = caused_by
        super().__init__(message)

    def __str__(self) -> str:
        try:
            return str(self.message % self._kwargs)
        except Exception:
            return str(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}: {self}"

    def dump_map(self) -> dict:
        result = {k: v for k, v in vars(self).items() if not k.startswith("_")}
        result.update(
            exception_type=f"<class '{self.module}.{type(self).__name__}'>",
            exception_name=type(self).__name__,
            message=str(self),
            error=repr(self),
            caused_by=repr(self._caused_by),
            **self._kwargs,
        )
        return result


class ArgumentError(CondaError):
    return_code = 2


class CondaValueError(CondaError, ValueError):
    pass


class CondaKeyError(CondaError, KeyError):
    def __init__(self, key, message, *args):
        self.key = key
        self.msg = f"{key!r}: {message}"
        super().__init__(self.msg)


class CondaEnvException(CondaError):
    pass


class CondaEnvironmentError(CondaError):
    def __init__(self, message):
        super().__init__(f"Environment error: {message}")


class CondaHTTPError(CondaError):
    def __init__(self, message, url, status_code="000", reason="CONNECTION FAILED", elapsed_time=None):
        full = f"HTTP {status_code} {reason} for url <{url}>\nElapsed: {elapsed_time or '-'}\n\n{message}"
        super().__init__(full, url=url, status_code=status_code, reason=reason, elapsed_time=elapsed_time)


class EnvironmentLocationNotFound(CondaError):
    def __init__(self, location):
        self.location = location
        super().__init__("Not a conda environment: %(location)s", location=location)


class DirectoryNotACondaEnvironmentError(CondaError):
    def __init__(self, target_directory):
        message = ("The target directory exists, but it is not a conda environment.\n"
                   "Use 'conda create' to convert the directory to a conda environment.\n"
                   "  target directory: %(target_directory)s\n")
        super().__init__(message, target_directory=target_directory)


class EnvironmentFileNotFound(CondaError):
    def __init__(self, filename, *args):
        self.filename = filename
        super().__init__(f"'{filename}' file not found")


class CondaFileIOError(CondaError):
    def __init__(self, filepath, message):
        self.filepath = filepath
        super().__init__(f"Couldn't read or write to file. '{filepath}'. {message}")


class PackagesNotFoundError(CondaError):
    pass


def _fmt(items) -> str:
    return "  - " + "\n  - ".join(str(x) for x in items)


class PackagesNotFoundInChannelsError(PackagesNotFoundError):
    def __init__(self, packages, channel_urls=()):
        message = ("The following packages are not available from current channels:\n\n"
                   "%(packages_formatted)s\n\n"
                   "Current channels:\n\n"
                   "%(channels_formatted)s\n\n"
                   "To search for alternate channels that may provide the conda package you're\n"
                   "looking for, navigate to\n\n"
                   "    https://anaconda.org\n\n"
                   "and use the search bar at the top of the page.\n")
        packages = sorted(str(p) for p in packages)
        channel_urls = list(channel_urls)
        super().__init__(message, packages=packages, packages_formatted=_fmt(packages),
                         channel_urls=channel_urls, channels_formatted=_fmt(channel_urls))


class NoChannelsConfiguredError(CondaError):
    def __init__(self):
        super().__init__(
            "No channels are configured: conda has no default channels since 25.9.0.\n"
            "Add one to your .condarc ('conda config --add channels <channel>'), list it\n"
            "under 'channels:' in the environment file, or pass '-c <channel>'.")


class UnsatisfiableError(CondaError):
    module = "conda_libmamba_solver.exceptions"

    def __init__(self, message):
        super().__init__("Encountered problems while solving:\n%(problems)s", problems=message)


LibMambaUnsatisfiableError = type("LibMambaUnsatisfiableError", (UnsatisfiableError,), {})


class CondaSystemExit(CondaError):
    return_code = 0


class CommandNotFoundError(CondaError):
    def __init__(self, command):
        super().__init__("No command 'conda %(command)s'.", command=command)


class LabCondaNotImplemented(CondaError):
    """A conda feature the lab double does not implement (rc 1)."""
    module = "labconda.errors"
