"""agentry_cli."""
