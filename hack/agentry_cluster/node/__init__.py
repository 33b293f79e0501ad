"""The process node: a stand-in kubelet and scheduler for the local cluster.

It registers the Node `agentry-node`, binds unscheduled pods to itself, and runs each
container's command as a local process inside a network and mount namespace of the pod's
own. Kept import-light: `launch` runs from this package inside every pod's namespaces.
"""
