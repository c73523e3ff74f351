"""Kernel side of the reference agent: BPF objects (built from ../../bpf), a ctypes binding to
libbpf, the policy→map compiler and ring-buffer record decoding into `activity` values."""
