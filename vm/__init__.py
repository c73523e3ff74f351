"""BPF-LSM virtual machines: a Debian image whose kernel enforces BPF LSM, booted under qemu.

Public surface (the CLI in vm.cli is a thin layer over it):
  vm.build.ensure_image()        build or reuse the cached image -> vm.build.Image
  vm.machine.boot()/stop()/load()  start, stop, find a VM -> vm.machine.Machine
  vm.agent.run()                 run a command in a VM, streaming its output, -> exit code
See docs/vm.md.
"""
