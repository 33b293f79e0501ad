"""agentry_cluster."""
