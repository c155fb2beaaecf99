package store

import (
	"context"
	"encoding/json"
	"errors"
	"maps"

	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/deps"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

const versionCols = `v.tenant, v.name, v.version, v.language, v.sha256, v.build_sha256, v.timeout_ms, v.memory_mb,
	v.cache_ttl_s, v.env, v.dependencies, v.deps_lock, v.created_at`

func scanVersion(row pgx.Row, withSource bool, extra ...any) (Version, error) {
	var v Version
	var env, depList, lock []byte
	dest := []any{&v.Tenant, &v.Name, &v.Version, &v.Language, &v.SHA256, &v.BuildSHA256, &v.TimeoutMS, &v.MemoryMB,
		&v.CacheTTLS, &env, &depList, &lock, &v.CreatedAt}
	if withSource {
		dest = append(dest, &v.Source)
	}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return Version{}, err
	}
	if err := json.Unmarshal(env, &v.Env); err != nil {
		return Version{}, err
	}
	if err := json.Unmarshal(depList, &v.Dependencies); err != nil {
		return Version{}, err
	}
	if len(v.Dependencies) == 0 {
		v.Dependencies = nil
	}
	if lock != nil {
		var l deps.Lock
		if err := json.Unmarshal(lock, &l); err != nil {
			return Version{}, err
		}
		v.SetLock(&l)
	}
	return v, nil
}

func insertVersion(ctx context.Context, tx pgx.Tx, v Version) (Version, error) {
	env, err := json.Marshal(nonNil(v.Env))
	if err != nil {
		return Version{}, err
	}
	depList, err := json.Marshal(nonNil(v.Dependencies))
	if err != nil {
		return Version{}, err
	}
	var lock []byte // SQL NULL without a lock
	if v.Lock != nil {
		if lock, err = json.Marshal(v.Lock); err != nil {
			return Version{}, err
		}
	}
	// A version without a build hash of its own is built by its sha256 (versions made
	// before the two were told apart: the sha256 of their source).
	build := v.Build()
	row := tx.QueryRow(ctx, `INSERT INTO function_versions AS v
		(tenant, name, version, language, source, sha256, build_sha256, timeout_ms, memory_mb, cache_ttl_s, env,
		 dependencies, deps_lock)
		VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12,$13)
		RETURNING `+versionCols+`, v.source`,
		v.Tenant, v.Name, v.Version, v.Language, v.Source, v.SHA256, build, v.TimeoutMS, v.MemoryMB, v.CacheTTLS, env,
		depList, lock)
	return scanVersion(row, true)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// CreateFunction registers a new function with version 1; Conflict when the name exists.
func (s *Store) CreateFunction(ctx context.Context, v Version) (Function, error) {
	var out Function
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO functions (tenant, name, language, latest_version)
			VALUES ($1, $2, $3, 1)`, v.Tenant, v.Name, v.Language); err != nil {
			return err
		}
		v.Version = 1
		nv, err := insertVersion(ctx, tx, v)
		out = Function{Version: nv, FunctionCreatedAt: nv.CreatedAt}
		return err
	})
	if fault.Is(translate(err, ""), fault.Conflict) {
		return Function{}, fault.Wrap(fault.Conflict, err, "function %q already exists", v.Name)
	}
	return out, translate(err, "create function")
}

// ErrLatestMoved is the cause of the Conflict PutVersion answers when another version was
// added since the caller read the latest one: the caller starts over.
var ErrLatestMoved = errors.New("another version was added meanwhile")

// PutVersion adds a version unless the latest one has the same source and settings, in
// which case it returns the latest and created=false. A new version gets number
// v.Version when that is set — only if it directly follows the latest (else a Conflict
// caused by ErrLatestMoved) — or the next number.
func (s *Store) PutVersion(ctx context.Context, v Version) (Function, bool, error) {
	var out Function
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var latest int
		var language string
		if err := tx.QueryRow(ctx, `SELECT latest_version, language FROM functions
			WHERE tenant = $1 AND name = $2 FOR UPDATE`, v.Tenant, v.Name).Scan(&latest, &language); err != nil {
			return err
		}
		if language != v.Language {
			return fault.New(fault.Invalid, "function %q is %s; a new version cannot change its language to %s",
				v.Name, language, v.Language)
		}
		cur, err := scanVersion(tx.QueryRow(ctx, `SELECT `+versionCols+`, f.created_at
			FROM function_versions v JOIN functions f USING (tenant, name)
			WHERE v.tenant = $1 AND v.name = $2 AND v.version = $3`, v.Tenant, v.Name, latest), false, &out.FunctionCreatedAt)
		if err != nil {
			return err
		}
		// The build (source and lock) and every setting compared one by one, not the
		// sha256: versions stored before it covered the settings have a sha256 of their
		// source alone. The requested dependencies count too: the same lock asked for with
		// another spec is shown as asked.
		if cur.BuildSHA256 == v.Build() && cur.TimeoutMS == v.TimeoutMS && cur.MemoryMB == v.MemoryMB &&
			cur.CacheTTLS == v.CacheTTLS && maps.Equal(nonNil(cur.Env), nonNil(v.Env)) &&
			maps.Equal(nonNil(cur.Dependencies), nonNil(v.Dependencies)) {
			out.Version = cur
			return nil
		}
		if v.Version != 0 && v.Version != latest+1 {
			return fault.Wrap(fault.Conflict, ErrLatestMoved, "function %q got version %d meanwhile", v.Name, latest)
		}
		v.Version = latest + 1
		nv, err := insertVersion(ctx, tx, v)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE functions SET latest_version = $3, updated_at = now()
			WHERE tenant = $1 AND name = $2`, v.Tenant, v.Name, v.Version); err != nil {
			return err
		}
		out.Version, created = nv, true
		return nil
	})
	if fault.KindOf(err) == fault.Invalid || errors.Is(err, ErrLatestMoved) {
		return Function{}, false, err
	}
	if fault.Is(translate(err, ""), fault.NotFound) {
		return Function{}, false, fault.Wrap(fault.NotFound, err, "function %q not found", v.Name)
	}
	return out, created, translate(err, "put version")
}

// GetFunction returns a function's latest version (without its source).
func (s *Store) GetFunction(ctx context.Context, tenant, name string) (Function, error) {
	var f Function
	v, err := scanVersion(s.pool.QueryRow(ctx, `SELECT `+versionCols+`, f.created_at
		FROM functions f JOIN function_versions v
		  ON v.tenant = f.tenant AND v.name = f.name AND v.version = f.latest_version
		WHERE f.tenant = $1 AND f.name = $2`, tenant, name), false, &f.FunctionCreatedAt)
	if err != nil {
		return Function{}, notFound(err, "get function", "function %q not found", name)
	}
	f.Version = v
	return f, nil
}

// ListFunctions lists a tenant's functions by name with their latest versions.
func (s *Store) ListFunctions(ctx context.Context, tenant string) ([]Function, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+versionCols+`, f.created_at
		FROM functions f JOIN function_versions v
		  ON v.tenant = f.tenant AND v.name = f.name AND v.version = f.latest_version
		WHERE f.tenant = $1 ORDER BY f.name`, tenant)
	if err != nil {
		return nil, translate(err, "list functions")
	}
	defer rows.Close()
	out := []Function{}
	for rows.Next() {
		var f Function
		v, err := scanVersion(rows, false, &f.FunctionCreatedAt)
		if err != nil {
			return nil, translate(err, "list functions")
		}
		f.Version = v
		out = append(out, f)
	}
	return out, translate(rows.Err(), "list functions")
}

// DeleteFunction deletes a function and its versions; its executions stay.
func (s *Store) DeleteFunction(ctx context.Context, tenant, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM functions WHERE tenant = $1 AND name = $2`, tenant, name)
	if err != nil {
		return translate(err, "delete function")
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.NotFound, "function %q not found", name)
	}
	return nil
}

// ListVersions lists a function's versions, oldest first, without sources.
func (s *Store) ListVersions(ctx context.Context, tenant, name string) ([]Version, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+versionCols+` FROM function_versions v
		WHERE v.tenant = $1 AND v.name = $2 ORDER BY v.version`, tenant, name)
	if err != nil {
		return nil, translate(err, "list versions")
	}
	defer rows.Close()
	out := []Version{}
	for rows.Next() {
		v, err := scanVersion(rows, false)
		if err != nil {
			return nil, translate(err, "list versions")
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "list versions")
	}
	if len(out) == 0 {
		return nil, fault.New(fault.NotFound, "function %q not found", name)
	}
	return out, nil
}

// GetVersion returns one version with its source; version 0 means the latest.
func (s *Store) GetVersion(ctx context.Context, tenant, name string, version int) (Version, error) {
	var row pgx.Row
	if version == 0 {
		row = s.pool.QueryRow(ctx, `SELECT `+versionCols+`, v.source FROM functions f
			JOIN function_versions v ON v.tenant = f.tenant AND v.name = f.name AND v.version = f.latest_version
			WHERE f.tenant = $1 AND f.name = $2`, tenant, name)
	} else {
		row = s.pool.QueryRow(ctx, `SELECT `+versionCols+`, v.source FROM function_versions v
			WHERE v.tenant = $1 AND v.name = $2 AND v.version = $3`, tenant, name, version)
	}
	v, err := scanVersion(row, true)
	if err != nil {
		if version == 0 {
			return Version{}, notFound(err, "get version", "function %q not found", name)
		}
		return Version{}, notFound(err, "get version", "function %q has no version %d", name, version)
	}
	return v, nil
}

// notFound translates err for op, naming the missing object when it is pgx.ErrNoRows.
func notFound(err error, op, format string, args ...any) error {
	t := translate(err, op)
	if fault.Is(t, fault.NotFound) {
		return fault.Wrap(fault.NotFound, err, format, args...)
	}
	return t
}
