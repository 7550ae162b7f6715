"""Compute drivers: the small interface the job steps call, with a simulated and (later) a local QEMU implementation."""
