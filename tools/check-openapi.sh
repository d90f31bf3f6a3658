#!/usr/bin/env bash
# tools/check-openapi.sh (make check-openapi): the clients people generate from openapi.yaml compile.
# - Go: oapi-codegen (pinned in tools/oapi-codegen/go.mod, apart from vidgen's own go.mod) generates
#   the types and client into a temporary module built with the versions pinned there, beside a file
#   that uses them as an app would (the upload parts are openapi_types.File, so a string fails).
# - TypeScript: openapi-typescript (tools/openapi-typescript/package-lock.json) with the Blob transform
#   of gen.mjs, compiled by tsc --strict with check.ts, whose @ts-expect-error lines fail the build if
#   an upload part accepts a string. Skipped, and said so, without Node.js and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
spec=$PWD/openapi.yaml

start=$SECONDS
mkdir "$tmp/goclient"
(cd tools/oapi-codegen && "$GO" tool oapi-codegen -generate types,client -package vidgenclient "$spec") > "$tmp/goclient/client.gen.go"
sed 's#^module .*#module vidgenclient#' tools/oapi-codegen/go.mod > "$tmp/goclient/go.mod"
cp tools/oapi-codegen/go.sum "$tmp/goclient/"
cat > "$tmp/goclient/use.go" <<'GO'
package vidgenclient

import (
	"context"

	openapi_types "github.com/oapi-codegen/runtime/types"
)

// submit is what an app writes: the upload parts are files (optional, as imageUrl and audioUrl
// stand in for them), the options typed.
func submit(ctx context.Context, c *ClientWithResponses, image, audio openapi_types.File) (*CreateJobResponse, error) {
	size := CreateJobMultipartBodySize("portrait")
	var body CreateJobMultipartBody
	body.Image, body.Audio, body.Size = &image, &audio, &size
	_ = body
	key := "retry-1"
	return c.CreateJobWithBodyWithResponse(ctx, &CreateJobParams{IdempotencyKey: &key}, "multipart/form-data; boundary=x", nil)
}

var _ = submit
GO
(cd "$tmp/goclient" && "$GO" vet ./...)
echo "openapi.yaml: oapi-codegen's Go client compiles ($((SECONDS - start)) s)"

start=$SECONDS
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "openapi.yaml: openapi-typescript not checked (Node.js and npm are not installed)"
  exit 0
fi
ts=tools/openapi-typescript
[ -d "$ts/node_modules/openapi-typescript" ] || (cd "$ts" && npm ci --no-audit --no-fund >/dev/null)
mkdir "$tmp/ts"
(cd "$ts" && node gen.mjs "$spec" "$tmp/ts/vidgen.d.ts")
cp "$ts/check.ts" "$ts/tsconfig.json" "$tmp/ts/"
grep -Eq 'image\??: Blob;' "$tmp/ts/vidgen.d.ts" || { echo "openapi-typescript types the image part as $(grep -m1 -Eo 'image\??: [^;]*' "$tmp/ts/vidgen.d.ts"), not Blob"; exit 1; }
"$ts/node_modules/.bin/tsc" -p "$tmp/ts/tsconfig.json"
echo "openapi.yaml: openapi-typescript's types compile with tsc, uploads as Blob ($((SECONDS - start)) s)"
