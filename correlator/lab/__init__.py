"""A small laboratory of real parts: certificates made with `cryptography` and a real mosquitto
broker on free loopback ports. The sample-incident generator, the integration tests and the
benchmarks all use it, so every log line the project learns from comes from running software.
Nothing in the analysis path imports it.
"""
