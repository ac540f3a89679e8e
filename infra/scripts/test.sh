#!/usr/bin/env bash
# The CDK app's offline test suite (`npm test`). Installs what it needs, idempotently:
# node modules (npm ci when missing) and cfn-lint (pip, when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export CDK_VALIDATION=false CDK_DISABLE_CLI_TELEMETRY=true JSII_SILENCE_WARNING_UNTESTED_NODE_VERSION=1

[ -d node_modules ] || npm ci --no-audit --no-fund

echo "== tsc --noEmit"
npx tsc --noEmit

echo "== statemachines/*.asl.json are what generate.mjs writes"
node ../statemachines/generate.mjs --check

echo "== asl-validator"
args=()
for f in ../statemachines/*.asl.json; do args+=(--json-path "$f"); done
npx asl-validator "${args[@]}"

echo "== workflow scenarios (marketplace states run + mock config, when the binary exists)"
python3 ../statemachines/scenarios/run.py

echo "== jest (aws-cdk-lib/assertions, cdk-nag, contracts)"
npx jest --ci

echo "== cdk synth (no Rust build: dummy asset)"
context=(-c dummyLambdaAsset=test/fixtures/lambda)
rm -rf cdk.out
npx cdk synth --quiet --no-notices --no-version-reporting --no-staging "${context[@]}" >/dev/null
template=cdk.out/EcosystemMarketplace.template.json
test -s "$template"
echo "   $template: $(node -e "console.log(Object.keys(require('./$template').Resources).length)") resources"

echo "== cfn-lint"
if ! command -v cfn-lint >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check cfn-lint
fi
# W3005 (redundant DependsOn) is ignored: the CDK itself makes each function depend on its role
# and policy explicitly, so the policy exists before the first invocation.
cfn-lint --format parseable --ignore-checks W3005 -- "$template"
echo "   cfn-lint: no findings"
