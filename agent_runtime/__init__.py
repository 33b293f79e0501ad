"""agent_runtime: the process in every Agentry agent pod (``agentry-runtime serve``)."""

__version__ = "0.1.0"
