"""Start the process node for one cluster: read its state directory, register the Node,
then run the scheduler, the pod watch, the Lease heartbeat and the kubelet server until
SIGTERM, when every pod's processes are stopped and their namespaces removed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

import aiohttp

from agentry_cluster.layout import StateLayout, read_info
from agentry_cluster.node import dns, envs, kubelet_server, network
from agentry_cluster.node.apiclient import ApiClient, ApiError, load_kubeconfig
from agentry_cluster.node.containers import ContainerRunner
from agentry_cluster.node.errors import NodeError
from agentry_cluster.node.pods import NodeServices, PodWorker, remove_created_mount_points
from agentry_cluster.node.registration import NodeHeartbeat
from agentry_cluster.node.restarts import DEFAULT_BASE_SECONDS
from agentry_cluster.node.scheduling import Scheduler
from agentry_cluster.node.watching import watch_forever

Json = dict[str, Any]
log = logging.getLogger("agentry.node")


def node_path() -> str:
    """The node's PATH, with this interpreter's bin directory (the venv's console scripts)
    first, so pods find `agentry-runtime` even when the node was started without it."""
    path = os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin")
    bindir = str(Path(sys.executable).parent)
    return path if bindir in path.split(":") else f"{bindir}:{path}"


def _host_resolv_conf(path: Path = Path("/etc/resolv.conf")) -> dns.ResolvConf:
    """The node's own resolv.conf: what `dnsPolicy: Default` pods get, as on a kubelet."""
    try:
        return dns.parse_resolv_conf(path.read_text())
    except OSError:
        return dns.ResolvConf()


class ProcessNode:
    def __init__(self, layout: StateLayout, backoff_base: float) -> None:
        info = read_info(layout)
        if info is None:
            raise NodeError(f"no cluster.json in {layout.root}: start the cluster with `up`")
        self.layout = layout
        self.info = info
        self.node_dir = layout.node_dir
        scratch = self.node_dir / "credentials"
        scratch.mkdir(parents=True, exist_ok=True)
        scratch.chmod(0o700)
        self.node_api = ApiClient(load_kubeconfig(layout.node_kubeconfig, scratch))
        self.scheduler_api = ApiClient(load_kubeconfig(layout.scheduler_kubeconfig, scratch))
        self.session = aiohttp.ClientSession()
        pool = network.IpPool(info.pod_cidr, info.bridge_ip, info.node_link_cidr)
        self.host_ip = info.host_ip or info.bridge_ip
        facts = envs.NodeFacts(
            node_name=info.node_name,
            host_ip=self.host_ip,
            api_host=info.pod_server_host,
            api_port=info.pod_server_port,
            path=node_path(),
        )
        self.services = NodeServices(
            api=self.node_api,
            facts=facts,
            pool=pool,
            bridge=info.bridge,
            node_netns=info.node_netns,
            gateway=info.bridge_ip,
            dns=dns.ClusterDns(info.dns_ip, info.cluster_domain, _host_resolv_conf()),
            node_dir=self.node_dir,
            ca_pem=layout.pki_file("ca.crt").read_bytes(),
            backoff_base=backoff_base,
            session=self.session,
        )
        self.workers: dict[str, PodWorker] = {}

    def find_container(self, namespace: str, pod: str, container: str) -> ContainerRunner | None:
        for worker in self.workers.values():
            if worker.namespace == namespace and worker.name == pod:
                for runner in worker.runners + worker.init_runners:
                    if runner.name == container:
                        return runner
        return None

    async def clean_leftovers(self) -> None:
        """Namespaces and files of a previous run of the node (killed without SIGTERM)."""
        for record in (self.node_dir / "pods").glob("*/network.json"):
            with contextlib.suppress(ValueError, TypeError, OSError):
                net = network.PodNetwork(**json.loads(record.read_text()))
                if killed := await network.kill_processes(net):
                    log.info("killed %d processes left in %s by an earlier run", killed, net.netns)
                await network.delete(net)
        shutil.rmtree(self.node_dir / "pods", ignore_errors=True)
        shutil.rmtree(self.node_dir / "logs", ignore_errors=True)
        shutil.rmtree(self.node_dir / "logs-of-deleted-pods", ignore_errors=True)
        remove_created_mount_points(self.node_dir)

    async def on_pod(self, kind: str, pod: Json) -> None:
        uid = pod["metadata"]["uid"]
        worker = self.workers.get(uid)
        if kind == "DELETED":
            if worker is not None:
                worker.deleted()
            return
        if worker is not None:
            worker.update(pod)
            return
        meta = pod["metadata"]
        if meta.get("deletionTimestamp"):
            # Never started here (or started by an earlier node run): nothing to stop.
            worker = PodWorker(self.services, pod)
            await worker._delete_from_api()
            return
        if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return
        worker = PodWorker(self.services, pod)
        self.workers[uid] = worker
        log.info("starting pod %s/%s", meta["namespace"], meta["name"])
        worker.task = asyncio.create_task(self._run_worker(worker))

    async def _run_worker(self, worker: PodWorker) -> None:
        try:
            await worker.run()
        except Exception:
            log.exception("pod %s/%s", worker.namespace, worker.name)
        finally:
            self.workers.pop(worker.uid, None)
            log.info("pod %s/%s ended", worker.namespace, worker.name)
            if not self.workers:
                remove_created_mount_points(self.node_dir)

    async def run(self, stop: asyncio.Event) -> None:
        info = self.info
        await self.clean_leftovers()
        await network.check_node_network(info.node_netns, info.bridge)
        heartbeat = NodeHeartbeat(self.node_api, info.node_name, self.host_ip, info.kubelet_port)
        node = await heartbeat.register()
        log.info("registered node %s (InternalIP %s)", info.node_name, self.host_ip)
        pki = self.layout.pki
        context = kubelet_server.server_context(
            pki / "kubelet-serving.crt", pki / "kubelet-serving.key", pki / "ca.crt"
        )
        server = await kubelet_server.serve(
            self.find_container, self.host_ip, info.kubelet_port, context
        )
        scheduler = Scheduler(self.scheduler_api, info.node_name, self.node_dir / "pvs")
        tasks = [
            asyncio.create_task(heartbeat.run(node)),
            asyncio.create_task(scheduler.run()),
            asyncio.create_task(
                watch_forever(
                    self.node_api,
                    "/api/v1/pods",
                    {"fieldSelector": f"spec.nodeName={info.node_name}"},
                    self.on_pod,
                    log,
                )
            ),
        ]
        log.info(
            "process node ready: kubelet API on https://%s:%d", self.host_ip, info.kubelet_port
        )
        await stop.wait()
        log.info("stopping: ending %d pods", len(self.workers))
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(*(w.shutdown() for w in list(self.workers.values())))
        remove_created_mount_points(self.node_dir)
        await server.cleanup()
        await self.close()

    async def close(self) -> None:
        await self.session.close()
        await self.node_api.close()
        await self.scheduler_api.close()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m agentry_cluster.node", description=__doc__)
    parser.add_argument("--cluster-dir", type=Path, required=True, help="the cluster's state dir")
    parser.add_argument(
        "--restart-backoff-base",
        type=float,
        default=DEFAULT_BASE_SECONDS,
        help="seconds of the first crash-loop back-off (doubles up to 5 minutes)",
    )
    return parser.parse_args(argv)


async def amain(args: argparse.Namespace) -> None:
    layout = StateLayout(args.cluster_dir.resolve())
    node = ProcessNode(layout, args.restart_backoff_base)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await node.run(stop)
    except BaseException:
        await asyncio.gather(*(w.shutdown() for w in list(node.workers.values())))
        await node.close()
        raise


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if os.geteuid() != 0:
        print(
            "agentry process node: needs root (network namespaces, veths, mounts)", file=sys.stderr
        )
        return 1
    layout = StateLayout(args.cluster_dir.resolve())
    layout.logs.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(layout.log("node"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        asyncio.run(amain(args))
    except (NodeError, ApiError, OSError) as exc:
        log.error("process node failed: %s", exc)
        print(f"agentry process node: {exc}", file=sys.stderr)
        return 1
    return 0
