"""The `kubectl agent` plugin (console script `kubectl-agent`); see docs/kubectl-agent.md."""
