"""correlator: names the root cause of MQTT and OPC UA connection failures from logs and artifacts."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mqtt-correlator")
except PackageNotFoundError:  # running from a checkout without an install
    __version__ = "0.0.0+checkout"

__all__ = ["__version__"]
