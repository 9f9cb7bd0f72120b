#!/usr/bin/env bash
# Run every case of deploy/argocd/clusterscale.io/ScaledCluster/health_test.yaml
# in Argo CD's own Lua evaluator (util/lua of github.com/argoproj/argo-cd/v3),
# with argocd-cm defaults (no `string`/`math` libraries), and check that the
# argocd-cm snippet carries health.lua byte for byte. Builds the evaluator once
# (cached under ~/.cache/clusterscale/argocd-lua-<version>/).
set -euo pipefail
cd "$(dirname "$0")/../.."
export GOTOOLCHAIN=${ARGOCD_GOTOOLCHAIN:-go1.27.3}
bin=$(bash tests/argocd/build-evaluator.sh)
cd deploy/argocd
exec "$bin" -dir clusterscale.io/ScaledCluster -cm argocd-cm.yaml
