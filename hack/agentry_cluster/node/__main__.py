"""`python -m agentry_cluster.node --cluster-dir DIR`: what `agentry-cluster up` starts."""

from agentry_cluster.node.main import main

if __name__ == "__main__":
    raise SystemExit(main())
