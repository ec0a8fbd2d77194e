"""livegen: a real-time AI jam partner for musicians."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("livegen")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
