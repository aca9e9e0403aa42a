"""correlator: names the root cause of MQTT and OPC UA connection failures from logs and artifacts."""

from correlator._version import __version__

__all__ = ["__version__"]
