#!/usr/bin/env bash
# Render deploy/clusterscale.yaml from the chart with its default values, for
# `kubectl apply -k deploy/` (or `kubectl apply -f deploy/clusterscale.yaml`
# after creating the namespace). tests/helm.rs fails when the committed file
# differs from a fresh render: run this after every chart change.
#
# Usage: hack/render-deploy.sh          (writes deploy/clusterscale.yaml)
#        hack/render-deploy.sh --stdout (prints it instead)
set -euo pipefail
cd "$(dirname "$0")/.."
HELM=${HELM:-$(bash hack/build-helm.sh)}
render() {
	echo "# Rendered by hack/render-deploy.sh from charts/clusterscale with the default values"
	echo "# (release \"clusterscale\", namespace \"clusterscale-system\"). Do not edit by hand."
	"$HELM" template clusterscale charts/clusterscale --namespace clusterscale-system
}
if [ "${1:-}" = --stdout ]; then
	render
else
	render >deploy/clusterscale.yaml
	echo "wrote deploy/clusterscale.yaml" >&2
fi
