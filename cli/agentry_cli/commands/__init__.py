"""One module per `kubectl agent` command; each exposes `run(env, args) -> exit code`."""
