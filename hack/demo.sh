#!/usr/bin/env bash
# `make demo`: from a fresh machine to a running, invoked Agent.
#
# Without arguments it uses the local cluster (the real control plane built from the Go
# module proxy plus the process node; no Docker needed). With KIND=1 it uses kind and a
# Docker engine instead: it builds the image, loads it into kind and installs the same
# chart. Each step prints the command it runs, so you can repeat any of them by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export PATH="$root/.venv/bin:$PATH"
release=agentry
operator_ns=agentry-system
agent=demo
cluster_bin=""

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if [[ "${KIND:-}" == "1" ]]; then
  for tool in kind docker kubectl helm; do
    command -v "$tool" >/dev/null || { echo "error: KIND=1 needs '$tool' on PATH" >&2; exit 1; }
  done
  docker info >/dev/null 2>&1 || { echo "error: KIND=1 needs a running Docker engine" >&2; exit 1; }
  say "kind cluster 'agentry' with the image loaded"
  kind get clusters | grep -qx agentry || run kind create cluster --name agentry
  run docker build -t agentry:dev .
  run kind load docker-image agentry:dev --name agentry
  image_args=(--set image.repository=agentry --set image.tag=dev --set image.pullPolicy=Never)
  # kindnet enforces NetworkPolicy: the agents admit the API server's proxy (kubectl agent
  # invoke) and reach the API server only at the node's address (docs/security.md).
  node_ip=$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' agentry-control-plane)
  image_args+=(--set "networkPolicy.apiServerCIDRs={$node_ip/32}")
  teardown="kind delete cluster --name agentry"
else
  say "local cluster (the first run builds Kubernetes from the Go module proxy: minutes)"
  if agentry-cluster status >/dev/null 2>&1; then
    echo "the local cluster is already running; reusing it"
  else
    run agentry-cluster up
  fi
  # The cluster's own files say where its kubeconfig and its kubectl and helm are (the
  # state directory follows XDG_STATE_HOME; a reused cluster may run other binaries).
  state_dir=$(python -c 'from agentry_cluster.layout import default_state_dir; print(default_state_dir())')
  export KUBECONFIG="$state_dir/admin.kubeconfig"
  cluster_bin=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["bin_dir"])' "$state_dir/cluster.json")
  export PATH="$cluster_bin:$PATH"
  image_args=()
  teardown="make cluster-down"
fi
hand_path="$root/.venv/bin${cluster_bin:+:$cluster_bin}"

say "the operator, installed by its Helm chart"
run helm upgrade --install "$release" charts/agentry --namespace "$operator_ns" \
  --create-namespace --wait --timeout 3m "${image_args[@]}"

say "an Agent"
run kubectl apply -f examples/agent.yaml
run kubectl wait "agents.agentry.dev/$agent" --for=condition=Ready --timeout=180s

say "talk to it (through the API server's service proxy; no port-forward); the second reply streams"
run kubectl agent invoke "$agent" --session demo-session "Hello! What can you do?"
run kubectl agent invoke "$agent" --session demo-session --stream "And what did I just ask you?"

say "what kubectl shows (the operator folds the replica's heartbeat into the status)"
# Status lags the replicas by a heartbeat and a status tick; wait for the first checkpoint
# so the columns show this conversation, but never fail the demo over it.
run kubectl wait "agents.agentry.dev/$agent" --for=jsonpath='{.status.lastCheckpoint.keyId}' \
  --timeout=90s || echo "(no checkpoint reported yet; the status catches up within a minute)"
run kubectl get agents.agentry.dev -o wide   # the counters have priority 1: -o wide shows them
run kubectl agent status "$agent"

say "tools: an MCP server behind a Service, and an Agent that calls it (docs/tools.md)"
if [[ "${KIND:-}" == "1" ]]; then
  # kind runs images: the example tool server is the demo image's `agentry-runtime tool-server`.
  printf '$ kubectl apply -f examples/agent-tools.yaml   # with image agentry:dev\n'
  sed 's#ghcr.io/agentry/agentry:0.1.0#agentry:dev#' examples/agent-tools.yaml | kubectl apply -f -
  kubectl patch deployment example-tools --type=json \
    -p '[{"op":"add","path":"/spec/template/spec/containers/0/imagePullPolicy","value":"Never"}]'
else
  run kubectl apply -f examples/agent-tools.yaml
fi
run kubectl rollout status deployment/example-tools --timeout=120s
run kubectl wait agents.agentry.dev/helper --for=condition=Ready --timeout=180s
run kubectl agent invoke helper '/tool add {"a": 2, "b": 3}'
run kubectl agent tools helper
run kubectl wait agents.agentry.dev/helper --for=jsonpath='{.status.metrics.toolCalls}'=1 \
  --timeout=60s || echo "(the status catches up within a heartbeat)"
run kubectl get agents.agentry.dev helper   # the turn's tokens (builtin: estimated)

# Shared memory: three replicas on the postgres backend. The local cluster runs a
# PostgreSQL beside it (like a managed database); elsewhere, export AGENTRY_POSTGRES_URL.
if [[ -z "${AGENTRY_POSTGRES_URL:-}" && -n "${state_dir:-}" ]]; then
  AGENTRY_POSTGRES_URL=$(python -c 'import json, sys; print(json.load(open(sys.argv[1])).get("postgres_url", ""))' "$state_dir/cluster.json")
fi
if [[ -n "${AGENTRY_POSTGRES_URL:-}" ]]; then
  say "three replicas sharing their memory in PostgreSQL"
  printf '$ kubectl create secret generic agents-db --from-literal=uri="$AGENTRY_POSTGRES_URL"\n'
  kubectl create secret generic agents-db --from-literal=uri="$AGENTRY_POSTGRES_URL" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  run kubectl apply -f examples/agent-postgres.yaml
  run kubectl wait agents.agentry.dev/shared --for=condition=Ready --timeout=240s
  run kubectl get pods -l agentry.dev/agent=shared
  say "turns of one session through the Service, answered by different pods"
  run python hack/demo_turns.py shared --session "demo-$(date +%s)"
  run kubectl agent status shared
else
  say "shared memory skipped: no PostgreSQL (set AGENTRY_POSTGRES_URL to a database's URI)"
fi

cat <<EOT

Continue by hand:
  export KUBECONFIG=${KUBECONFIG:-~/.kube/config}
  export PATH=$hand_path:\$PATH
  kubectl describe agent.agentry.dev $agent
  kubectl agent health $agent
  kubectl agent tools helper
  kubectl agent logs $agent -f
  kubectl agent stop $agent && kubectl agent start $agent
  kubectl scale agents.agentry.dev/shared --replicas=5    # no pod restarts
Tear down: $teardown
EOT
