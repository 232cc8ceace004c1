"""The deployment tests' tools: the helm CLI and the chart it renders, the bot as a process."""
