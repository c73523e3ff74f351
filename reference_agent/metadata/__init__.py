"""Facts the agent adds to events: containers/pods by cgroup id, host and agent facts, user names."""
