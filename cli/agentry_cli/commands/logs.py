"""`kubectl agent logs NAME`: all replicas' logs merged in time order, optionally followed.

With -f the history is printed merged by time first; then each replica's stream is
followed in a thread and lines print as they arrive. Lines already printed from the
history are skipped when the follow streams start slightly earlier (they overlap on
purpose so no line is lost between the two reads).
"""

from __future__ import annotations

import argparse
import json
import math
import queue
import threading
from collections.abc import Iterator
from typing import Any

from .. import agents
from ..cluster import LogOptions
from ..environment import Env
from ..errors import EXIT_FAILED, EXIT_OK, CliError, UsageError
from ..formatting import render
from ..loglines import LogLine, as_document, format_line, merge, parse_line, parse_log

# Seconds the follow streams reach back before the history read, to not miss lines.
FOLLOW_OVERLAP_SECONDS = 5
_DONE = object()


def run(env: Env, args: argparse.Namespace) -> int:
    if args.follow and args.previous:
        raise UsageError("--previous cannot be combined with -f: a terminated container has ended")
    agent = env.cluster.get_agent(env.namespace, args.name)
    pods = replica_pods(env, agent)
    if not pods:
        env.note(f"Agent {args.name} has no pods (suspended or not yet started).")
        return EXIT_OK
    since = None if args.since is None else max(1, math.ceil(args.since))
    printer = _Printer(env, args.raw, max(len(agents.name_of(p)) for p in pods))
    started = env.clock.now()
    streams, failures = [], 0
    for pod in pods:
        options = LogOptions(
            container=_container(pod, args.container),
            since_seconds=since,
            previous=args.previous,
            tail_lines=args.tail,
        )
        try:
            text = env.cluster.read_log(env.namespace, agents.name_of(pod), options)
        except CliError as error:
            failures += 1
            env.note(f"{agents.name_of(pod)}: {error.message}")
            continue
        streams.append(parse_log(agents.name_of(pod), text))
    for line in merge(streams):
        printer.print(line)
    if args.follow:
        elapsed = (env.clock.now() - started).total_seconds()
        overlap = math.ceil(elapsed) + FOLLOW_OVERLAP_SECONDS
        seen = {stream[0].pod: _tail_marker(stream) for stream in streams if stream}
        follow(env, pods, seen, overlap, args.container, printer)
    return EXIT_FAILED if failures == len(pods) else EXIT_OK


def replica_pods(env: Env, agent: dict[str, Any]) -> list[dict[str, Any]]:
    """The Agent's StatefulSet pods, by ordinal (other objects may share the instance label)."""
    name = agents.name_of(agent)
    found = env.cluster.list_pods(env.namespace, f"{agents.INSTANCE_LABEL}={name}")
    pods = [p for p in found if agents.is_replica_pod(name, agents.name_of(p))]
    return sorted(pods, key=lambda p: int(agents.name_of(p).rsplit("-", 1)[1]))


def _container(pod: dict[str, Any], wanted: str | None) -> str | None:
    """The container to read: -c, the default-container annotation, the one serving http."""
    if wanted:
        return wanted
    containers = (pod.get("spec") or {}).get("containers") or []
    if len(containers) <= 1:
        return None
    annotations = pod.get("metadata", {}).get("annotations") or {}
    default = annotations.get("kubectl.kubernetes.io/default-container")
    if default:
        return str(default)
    for container in containers:
        if any(port.get("name") == "http" for port in container.get("ports") or []):
            return str(container["name"])
    return str(containers[0]["name"])


def _tail_marker(stream: list[LogLine]) -> tuple[int, set[str]]:
    """The last time printed for a pod and the texts printed at exactly that time."""
    last = stream[-1].nanos
    return last, {line.text for line in stream if line.nanos == last}


def skip_already_printed(
    lines: Iterator[LogLine], marker: tuple[int, set[str]] | None
) -> Iterator[LogLine]:
    """Drop the overlap between the history and a follow stream of the same pod."""
    for line in lines:
        if marker is not None:
            last, texts = marker
            if line.nanos < last or (line.nanos == last and line.text in texts):
                continue
            marker = None
        yield line


def follow(
    env: Env,
    pods: list[dict[str, Any]],
    seen: dict[str, tuple[int, set[str]]],
    overlap_seconds: int,
    container: str | None,
    printer: _Printer,
) -> None:
    """Stream every pod in a thread; print lines as they arrive until all end or Ctrl-C."""
    lines: queue.Queue[object] = queue.Queue()

    def pump(pod: dict[str, Any]) -> None:
        name = agents.name_of(pod)
        options = LogOptions(container=_container(pod, container), since_seconds=overlap_seconds)
        try:
            raw = env.cluster.follow_log(env.namespace, name, options)
            parsed = _parse_stream(name, raw)
            for line in skip_already_printed(parsed, seen.get(name)):
                lines.put(line)
        except CliError as error:
            lines.put(f"{name}: {error.message}")
        finally:
            lines.put(_DONE)

    for pod in pods:
        threading.Thread(target=pump, args=(pod,), daemon=True).start()
    running = len(pods)
    try:
        while running:
            item = lines.get()
            if item is _DONE:
                running -= 1
            elif isinstance(item, LogLine):
                printer.print(item)
            else:
                env.note(str(item))
    except KeyboardInterrupt:
        return


def _parse_stream(pod: str, raw: Iterator[str]) -> Iterator[LogLine]:
    nanos = 0
    for text in raw:
        line = parse_line(pod, text, nanos)
        nanos = line.nanos
        yield line


class _Printer:
    """Prints lines in the chosen form: pretty (default), --raw, or -o json|yaml."""

    def __init__(self, env: Env, raw: bool, pod_width: int) -> None:
        self.env, self.raw, self.pod_width = env, raw, pod_width

    def print(self, line: LogLine) -> None:
        if self.env.output == "json":
            self.env.emit(json.dumps(as_document(line)))
        elif self.env.output == "yaml":
            self.env.emit("---\n" + render(as_document(line), "yaml"))
        else:
            self.env.emit(format_line(line, self.pod_width, self.raw))
