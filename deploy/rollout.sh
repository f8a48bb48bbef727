#!/usr/bin/env bash
# The rollout of one image to one stack, as the deploy pipeline runs it (after its approval):
# `pulumi up` with the new image and the runners' partition at replicas-1 (the migration Job,
# then one runner: the canary), a wait, the canary check and the smoke test, then every runner
# and the smoke test again. A failed check or smoke test puts the previous image back on every
# runner and fails the build. Migrations are additive (docs/design.md), so the previous image
# runs on the migrated schema.
# Usage: deploy/rollout.sh STACK IMAGE URL AUDIENCE PROMETHEUS_URL
set -euo pipefail
stack=$1 image=$2 url=$3 audience=$4 prometheus=$5
cd "$(dirname "$0")/../infra"
previous=$(pulumi config get --stack "$stack" agentlane:image)
replicas=$(pulumi config get --stack "$stack" --path agentlane:runners.replicas)
canary="agentlane-runner-$((replicas - 1))"
# The build's own service account proves who it is with a Google ID token (the stacks' JWKS).
metadata="http://metadata.google.internal/computeMetadata/v1/instance/service-accounts/default"
token_command="curl -sf -H Metadata-Flavor:Google $metadata/identity?audience=$audience"

up() {  # IMAGE PARTITION
  pulumi config set --stack "$stack" agentlane:image "$1"
  pulumi config set --stack "$stack" --path agentlane:runners.rolloutPartition "$2"
  pulumi up --stack "$stack" --yes --policy-pack policy
}

rollback() {  # WHY
  echo "rollout: $1; rolling back to $previous" >&2
  up "$previous" 0
  exit 1
}

smoke() {
  python ../scripts/smoke.py --url "$url" --token-command "$token_command"
}

up "$image" $((replicas - 1))
sleep "${CANARY_SECONDS:-300}"
python ../scripts/canary_check.py --prometheus "$prometheus" --pod "$canary" \
  || rollback "the canary check failed"
smoke || rollback "the smoke test failed on the canary"
up "$image" 0
smoke || rollback "the smoke test failed after the promotion"
echo "rollout: $image is live on $stack"
