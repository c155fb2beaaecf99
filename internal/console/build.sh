#!/bin/sh
# Builds the console's bundle into internal/console/dist (embedded by `go build`).
# `make build` calls this; it needs node and npm, and the npm registry the first time.
# npm ci installs exactly package-lock.json and runs no package's install scripts.
set -eu
cd "$(dirname "$0")/web"
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	npm ci --ignore-scripts --no-audit --no-fund
fi
npm run --silent build
