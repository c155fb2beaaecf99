// Package deps resolves, locks, installs and caches a function's third-party dependencies
// (npm packages, Python wheels, Rust crates) without naming a language: everything
// language-specific is a Spec, the `dependencies:` block of a runtime registry entry
// (runtimes/runtimes.yaml holds those of node, python and rust).
//
// Registration calls Resolve: the requested packages become a Lock (the installer's own
// lock files and their sha256), stored with the version. The runtime host calls Install
// with that lock and gets a directory (one per lock hash, shared by every function with
// the same lock) and the environment pointing a worker or build at it.
//
// What each step needs (every command runs through Config.Exec, the sandbox's seam — the
// runtime host's build sandbox, SetExecutor — with a minimal environment, a private HOME and
// a timeout; Cmd.Network says what it reaches). Fetching is apart from installing: a
// `registry` command only downloads, every command that unpacks packages is `none`.
//
//	node    resolve  npm install --package-lock-only --ignore-scripts   registry (metadata)
//	        install  npm cache add <the lock's packages>                registry (tarballs into the cache)
//	                 npm ci --offline --ignore-scripts --omit=dev       none
//	python  resolve  pip download --only-binary=:all:, then a hashing    none with a wheelhouse only,
//	                 script writing name==version --hash=sha256:… lines registry with an index URL
//	        install  pip download --no-deps --require-hashes            as resolve
//	                 pip install --no-index --require-hashes --target    none
//	rust    resolve  cargo generate-lockfile --offline                   none (the crate registry directory)
//	        install  cargo vendor --offline --locked                    none
//
// No package code runs at install: npm lifecycle scripts are disabled, pip installs wheels
// only (an sdist would run setup.py), cargo only copies sources; whatever compiles (Rust
// build scripts) runs later in the runtime's build sandbox.
//
// Cache layout under Config.Dir: downloads/<title>/ (npm and pip download caches, shared),
// installs/<hash>/ (complete installs, renamed into place from installs/.tmp-*),
// locks/<hash> (flock: shared while an install is in use, exclusive while it is built or
// evicted), work/ (resolve projects and private homes, removed after each step).
package deps
