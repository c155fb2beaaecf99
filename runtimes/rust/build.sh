#!/bin/sh
# Builds a Rust script into a long-lived worker binary, {workdir}/handler.
#
#   build.sh <workdir> <cache_dir> <runtime_dir>     build the script in <workdir>/handler.rs
#   build.sh --prepare <cache_dir> <runtime_dir>     compile serde_json once into the shared target
#
# Every script is its own cargo package (named after its sha256) built in its own target
# directory and CARGO_HOME inside <workdir>: builds of different scripts never wait on one
# cargo lock and see no other script's output. The target starts as a copy of the
# dependencies --prepare compiled once per host into <cache_dir>/cargo-target (serde_json
# and what it needs, no script), so a script compiles in about a second; it is removed
# afterwards. Crates come from Debian's packaged sources (librust-serde-json-dev), offline.
# The host runs a build as an unprivileged uid of its own that can write <workdir> only.
# On failure the compiler's diagnostics are printed on stderr and the exit status is non-zero.
#
# A version with dependencies builds with the environment of its installed lock (the
# registry entry's build_env, which workers never see): LAMBDA_CARGO_MANIFEST (its [dependencies], serde_json
# included), LAMBDA_CARGO_LOCK (the exact versions) and LAMBDA_CARGO_CONFIG (the vendored
# sources of exactly those versions as the only source, offline).
set -eu

if [ "$1" = "--prepare" ]; then
	cache=$2 rt=$3 work=$2/prepare name=prepare
	mkdir -p "$work"
	# Replicas sharing a cache dir prepare one at a time: the files below are rewritten in
	# place, and a second writer would truncate them under the first one's compiler.
	if command -v flock >/dev/null 2>&1; then
		exec 9>"$cache/prepare.lock"
		flock 9
	fi
	cat >"$work/handler.rs" <<'RS'
use serde_json::{json, Value};
fn handler(event: Value, _ctx: &Context) -> Result<Value, String> {
    Ok(json!({ "event": event }))
}
RS
else
	work=$1 cache=$2 rt=$3
	name=script_$(basename "$work" | cut -c1-16)
fi

cargo=$(command -v cargo || true)
if [ -z "$cargo" ]; then
	for c in "${CARGO_HOME:-${HOME:-/root}/.cargo}/bin/cargo" /usr/local/cargo/bin/cargo /root/.cargo/bin/cargo; do
		if [ -x "$c" ]; then cargo=$c; break; fi
	done
fi
if [ -z "$cargo" ]; then
	echo "build.sh: cargo not found" >&2
	exit 127
fi
registry=${LAMBDA_CARGO_REGISTRY:-/usr/share/cargo/registry}
# rustup's toolchains stay where HOME said; cargo's own state moves into the build.
if [ -z "${RUSTUP_HOME:-}" ] && [ -d "${HOME:-/root}/.rustup" ]; then
	export RUSTUP_HOME="${HOME:-/root}/.rustup"
fi
export CARGO_HOME="$work/.cargo-home"
if [ "$name" = prepare ]; then
	target=$cache/cargo-target
else
	target=$work/target
	rm -rf "$target"
	for d in deps build .fingerprint; do
		mkdir -p "$target/release/$d"
		if [ -d "$cache/cargo-target/release/$d" ]; then
			find "$cache/cargo-target/release/$d" -mindepth 1 -maxdepth 1 ! -name 'script_*' ! -name 'prepare*' \
				-exec cp -Rp {} "$target/release/$d/" \;
		fi
	done
fi

mkdir -p "$work/src" "$work/.cargo"
cp "$rt/runtime.rs" "$work/src/lambda_runtime.rs"
cat >"$work/src/main.rs" <<'RS'
#![allow(dead_code, unused_imports)]
mod lambda_runtime;
pub use lambda_runtime::Context;
include!("../handler.rs");
fn main() {
    lambda_runtime::run(handler)
}
RS
cat >"$work/Cargo.toml" <<TOML
[package]
name = "$name"
version = "0.1.0"
edition = "2021"

$(if [ -n "${LAMBDA_CARGO_MANIFEST:-}" ]; then sed -n '/^\[dependencies\]/,$p' "$LAMBDA_CARGO_MANIFEST"; else printf '[dependencies]\nserde_json = "1"\n'; fi)

[profile.release]
opt-level = 1
debug = false
incremental = false
codegen-units = 16
TOML
cat >"$work/.cargo/config.toml" <<TOML
[source.crates-io]
replace-with = "debian"
[source.debian]
directory = "$registry"
[net]
offline = true
TOML

if [ -n "${LAMBDA_CARGO_CONFIG:-}" ]; then
	cp "$LAMBDA_CARGO_CONFIG" "$work/.cargo/config.toml"
	cp "$LAMBDA_CARGO_LOCK" "$work/Cargo.lock"
fi

cd "$work"
log=$work/build.$$.log
if ! CARGO_TARGET_DIR="$target" CARGO_TERM_COLOR=never "$cargo" build --release --quiet --offline >"$log" 2>&1; then
	sed -e 's#src/\.\./handler\.rs#handler.rs#g' -e "s#$work/##g" "$log" >&2
	rm -rf "$log" "$CARGO_HOME"
	[ "$name" = prepare ] || rm -rf "$target"
	exit 1
fi
rm -rf "$log" "$CARGO_HOME"
if [ "$name" = prepare ]; then
	# Builds (other uids) copy the prepared dependencies from here.
	chmod -R a+rX "$target"
	exit 0
fi
# Hosts sharing a cache dir may build the same script at once: the copy is atomic.
cp "$target/release/$name" "$work/handler.tmp.$$"
mv -f "$work/handler.tmp.$$" "$work/handler"
rm -rf "$target"
