#!/usr/bin/env bash
# kube-score on what Agentry puts into a cluster, as `make lint` runs it:
#   1. the chart rendered with default values, and with the monitoring objects enabled;
#   2. the children the operator's builders make of every Agent in examples/
#      (`python -m agentry_operator.render`).
# Any CRITICAL or WARNING finding fails. A check that is deliberately not followed is
# ignored below, one flag (or, in the chart, one annotation) each, with the reason.
# kube-score is built from its pinned Go module (hack/build/kube-score) and cached.
#
#   hack/kube-score.sh                      all of the above
#   hack/kube-score.sh --children FILE      score one stream of operator children (the
#                                           tests feed it a broken one to see it fail)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-$root/.venv/bin/python}
bin=$("$here/build-binaries.sh")
kube_score=$("$here/build-binaries.sh" kube-score)
kube_version=$(basename "$bin")

common=(score --output-format ci --exit-one-on-warning --kubernetes-version "${kube_version%.*}")
# No CPU limit, for the operator or the agents: CPU is compressible (a busy pod is slowed,
# never killed), and a CFS quota throttles a latency-bound server in 100 ms periods even
# when the node has idle cores. Requests give each pod its share under contention
# (docs/operator.md, "Resource defaults").
common+=(--ignore-container-cpu-limit)

# The operator's children, beyond the common ones:
children_flags=(
  # The runtime image is pinned by tag (the chart's appVersion), so IfNotPresent pulls the
  # same image without a registry round trip; agentDefaults.imagePullPolicy sets Always
  # for those who run a moving tag.
  --ignore-test container-image-pull-policy
  # Replicas spread with topologySpreadConstraints over kubernetes.io/hostname, which
  # kube-score 1.20 does not count as a host anti-affinity (a required anti-affinity would
  # leave replicas pending on a one-node cluster). check_spread below stands in for it.
  --ignore-test statefulset-has-host-podantiaffinity
)

# Prints the findings of one manifest (stdin) and fails when there are any.
score() {
  local label=$1 out status=0
  shift
  out=$("$kube_score" "${common[@]}" "$@" -) || status=$?
  if [[ $status -ne 0 ]]; then
    echo "kube-score: $label:" >&2
    grep -v -e '^\[OK\]' -e '^\[SKIPPED\]' <<<"$out" >&2 || true
    return 1
  fi
  echo "kube-score: $label: no findings"
}

# Every StatefulSet spreads its pods over nodes (what kube-score cannot see, see above).
check_spread() {
  "$python" -c '
import sys, yaml
for obj in yaml.safe_load_all(sys.stdin):
    if obj and obj["kind"] == "StatefulSet":
        keys = [c["topologyKey"] for c in obj["spec"]["template"]["spec"].get("topologySpreadConstraints") or []]
        if "kubernetes.io/hostname" not in keys:
            name = obj["metadata"]["name"]
            sys.exit("kube-score: %s: StatefulSet %s does not spread its pods over "
                     "kubernetes.io/hostname" % (sys.argv[1], name))
' "$1"
}

# The children of one Agent file; development sets no memory limit on purpose (the table
# in docs/operator.md), so only for development Agents is kube-score's memory-limit
# requirement left out.
score_children() {
  local example=$1 manifest=$2 label="examples/$(basename "$1")" flags=("${children_flags[@]}")
  local environments
  environments=$("$python" -c '
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "Agent"]
print(" ".join(sorted({(d.get("spec") or {}).get("environment", "development") for d in docs})))
' "$example")
  if [[ "$environments" == "development" ]]; then
    flags+=(--ignore-container-memory-limit)
  fi
  score "children of $label" "${flags[@]}" <"$manifest" && check_spread "$label" <"$manifest"
}

if [[ "${1:-}" == "--children" ]]; then
  score "children in $2" "${children_flags[@]}" <"$2" && check_spread "$2" <"$2"
  exit
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failed=0
helm=("$bin/helm" template agentry "$root/charts/agentry" --kube-version "$kube_version")
"${helm[@]}" >"$work/chart.yaml"
score "chart, default values" <"$work/chart.yaml" || failed=1
"${helm[@]}" --set podMonitor.enabled=true,serviceMonitor.enabled=true,prometheusRule.enabled=true \
  >"$work/chart-monitoring.yaml"
score "chart, monitoring values" <"$work/chart-monitoring.yaml" || failed=1
for example in "$root"/examples/*.yaml; do
  "$python" -m agentry_operator.render "$example" >"$work/children.yaml"
  score_children "$example" "$work/children.yaml" || failed=1
done
exit $failed
