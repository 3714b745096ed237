"""vm-boot-harness: boot aarch64 guests in loops over a matrix and score every boot."""

__version__ = "0.1.0"
