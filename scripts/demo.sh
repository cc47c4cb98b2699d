#!/usr/bin/env bash
# A short session with the strata command line on the embedded store: append a few
# events, show a conflict, read them back, follow the log and verify the files.
set -euo pipefail
cd "$(dirname "$0")/.."
strata=${STRATA_BIN:-target/release/strata}
[ -x "$strata" ] || cargo build --release --quiet
data=${STRATA_DATA_DIR:-$(mktemp -d -t strata-demo-XXXXXX)}
export STRATA_DATA_DIR=$data
echo "data directory: $data"

echo; echo '$ strata append   (three appends, the last one conflicts)'
"$strata" append <<'JSON'
{"stream":"order-1","expected_version":"no_stream","events":[{"type":"OrderPlaced","data":{"customer":"ann","total":1200},"metadata":{"actor":"ann"}}]}
{"stream":"order-1","expected_version":1,"events":[{"type":"OrderPaid","data":{"amount":1200}},{"type":"OrderShipped","data":{}}]}
{"stream":"order-1","expected_version":1,"events":[{"type":"OrderCancelled","data":{}}]}
JSON

echo; echo '$ strata read order-1'
"$strata" read order-1

echo; echo '$ strata read-all --type OrderPaid'
"$strata" read-all --type OrderPaid

echo; echo '$ strata verify'
"$strata" verify
