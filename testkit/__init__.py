"""The test kit: real parts that the tests (tests/) and the benchmarks (bench/) both start and
drive — a private Mosquitto, the firmware emulator and the network-sensor simulator as
processes, the connector's programs as a stack, stand-ins for a handler and for the aggregator,
instances on disk, test certificates, ``wait_for`` and ``free_port``.

It imports neither ``tests`` nor ``bench`` (tests/test_test_kit.py checks), so that bench never
depends on the test suite; none of it ships in the image (.dockerignore lets in only the
product's packages).
"""
