"""What the node's own files say, read defensively: /proc (procfs), the cgroup v2 tree
(cgroups), account files (accounts) and kubelet volume mounts (mounts).

The lowest layer of the agent: the kernel side, the process table and the metadata layer all
read the node through these modules, and they import nothing else of the agent.
"""
