#!/usr/bin/env bash
# `promtool check rules` on the chart's PrometheusRule, as `make lint` runs it.
#
# Renders the rule with the chart's own helm (prometheusRule.enabled=true), takes its
# `spec` (a Prometheus rule file: `groups:`) and checks it with promtool built from the
# pinned Go module. Both binaries come from hack/build-binaries.sh, cached.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
python=${PYTHON:-$root/.venv/bin/python}
bin=$("$here/build-binaries.sh")
promtool=$("$here/build-binaries.sh" promtool)
rules=$(mktemp --suffix=.rules.yaml)
trap 'rm -f "$rules"' EXIT

"$bin/helm" template agentry "$root/charts/agentry" --kube-version "$(basename "$bin")" \
  --set prometheusRule.enabled=true \
  --show-only templates/prometheusrule.yaml \
  | "$python" -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(sys.stdin)["spec"], sys.stdout)' \
  > "$rules"
"$promtool" check rules --lint=all --lint-fatal "$rules"
