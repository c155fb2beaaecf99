package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// PipelineVersion is one immutable version of a pipeline. Definition is the canonical
// definition without its name (what SHA256 covers); the name is the pipeline's.
type PipelineVersion struct {
	Tenant     string
	Name       string
	Version    int
	SHA256     string
	Definition json.RawMessage
	CreatedAt  time.Time
}

// CreatePipeline stores a new pipeline as version 1; Conflict when the name exists.
func (s *Store) CreatePipeline(ctx context.Context, p PipelineVersion) (PipelineVersion, error) {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := putDefinition(ctx, tx, p); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO pipelines (tenant, name, latest_version) VALUES ($1, $2, 1)`,
			p.Tenant, p.Name); err != nil {
			return err
		}
		p.Version = 1
		return tx.QueryRow(ctx, `INSERT INTO pipeline_versions (tenant, name, version, sha256) VALUES ($1, $2, 1, $3)
			RETURNING created_at`, p.Tenant, p.Name, p.SHA256).Scan(&p.CreatedAt)
	})
	if err != nil {
		err = translate(err, "create pipeline")
		if fault.Is(err, fault.Conflict) {
			return PipelineVersion{}, fault.Wrap(fault.Conflict, err,
				"pipeline %q already exists; PUT /v1/pipelines/%s adds a version", p.Name, p.Name)
		}
		return PipelineVersion{}, err
	}
	return p, nil
}

func putDefinition(ctx context.Context, tx pgx.Tx, p PipelineVersion) error {
	_, err := tx.Exec(ctx, `INSERT INTO pipeline_definitions (tenant, sha256, definition) VALUES ($1, $2, $3)
		ON CONFLICT DO NOTHING`, p.Tenant, p.SHA256, string(p.Definition))
	return err
}

// PutPipelineVersion adds a version unless the latest one has the same sha256, which it
// returns instead (created=false). NotFound when the pipeline does not exist.
func (s *Store) PutPipelineVersion(ctx context.Context, p PipelineVersion) (PipelineVersion, bool, error) {
	var out PipelineVersion
	created := false
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var latest int
		if err := tx.QueryRow(ctx, `SELECT latest_version FROM pipelines WHERE tenant = $1 AND name = $2 FOR UPDATE`,
			p.Tenant, p.Name).Scan(&latest); err != nil {
			return err
		}
		cur, err := getPipelineVersion(ctx, tx, p.Tenant, p.Name, latest)
		if err != nil {
			return err
		}
		if cur.SHA256 == p.SHA256 {
			out = cur
			return nil
		}
		if err := putDefinition(ctx, tx, p); err != nil {
			return err
		}
		p.Version = latest + 1
		if err := tx.QueryRow(ctx, `INSERT INTO pipeline_versions (tenant, name, version, sha256) VALUES ($1, $2, $3, $4)
			RETURNING created_at`, p.Tenant, p.Name, p.Version, p.SHA256).Scan(&p.CreatedAt); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE pipelines SET latest_version = $3, updated_at = now() WHERE tenant = $1 AND name = $2`,
			p.Tenant, p.Name, p.Version); err != nil {
			return err
		}
		out, created = p, true
		return nil
	})
	if err != nil {
		return PipelineVersion{}, false, notFound(err, "put pipeline version", "pipeline %q not found", p.Name)
	}
	return out, created, nil
}

type rowQuerier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

const pipelineVersionCols = `v.tenant, v.name, v.version, v.sha256, d.definition, v.created_at`

func scanPipelineVersion(row pgx.Row) (PipelineVersion, error) {
	var p PipelineVersion
	var def string
	if err := row.Scan(&p.Tenant, &p.Name, &p.Version, &p.SHA256, &def, &p.CreatedAt); err != nil {
		return PipelineVersion{}, err
	}
	p.Definition = json.RawMessage(def)
	return p, nil
}

func getPipelineVersion(ctx context.Context, q rowQuerier, tenant, name string, version int) (PipelineVersion, error) {
	return scanPipelineVersion(q.QueryRow(ctx, `SELECT `+pipelineVersionCols+` FROM pipeline_versions v
		JOIN pipeline_definitions d ON d.tenant = v.tenant AND d.sha256 = v.sha256
		WHERE v.tenant = $1 AND v.name = $2 AND v.version = $3`, tenant, name, version))
}

// GetPipeline returns a pipeline's version (0: the latest).
func (s *Store) GetPipeline(ctx context.Context, tenant, name string, version int) (PipelineVersion, error) {
	var (
		p   PipelineVersion
		err error
	)
	if version > 0 {
		p, err = getPipelineVersion(ctx, s.pool, tenant, name, version)
		if errors.Is(err, pgx.ErrNoRows) {
			if _, perr := s.GetPipeline(ctx, tenant, name, 0); perr != nil {
				return PipelineVersion{}, perr
			}
			return PipelineVersion{}, fault.New(fault.NotFound, "pipeline %q has no version %d", name, version)
		}
	} else {
		p, err = scanPipelineVersion(s.pool.QueryRow(ctx, `SELECT `+pipelineVersionCols+` FROM pipelines p
			JOIN pipeline_versions v ON v.tenant = p.tenant AND v.name = p.name AND v.version = p.latest_version
			JOIN pipeline_definitions d ON d.tenant = v.tenant AND d.sha256 = v.sha256
			WHERE p.tenant = $1 AND p.name = $2`, tenant, name))
	}
	if err != nil {
		return PipelineVersion{}, notFound(err, "get pipeline", "pipeline %q not found", name)
	}
	return p, nil
}

// ListPipelines lists a tenant's pipelines (their latest versions) by name.
func (s *Store) ListPipelines(ctx context.Context, tenant string) ([]PipelineVersion, error) {
	return s.listPipelineVersions(ctx, "list pipelines", `SELECT `+pipelineVersionCols+` FROM pipelines p
		JOIN pipeline_versions v ON v.tenant = p.tenant AND v.name = p.name AND v.version = p.latest_version
		JOIN pipeline_definitions d ON d.tenant = v.tenant AND d.sha256 = v.sha256
		WHERE p.tenant = $1 ORDER BY p.name`, tenant)
}

// ListPipelineVersions lists a pipeline's versions, oldest first; NotFound without it.
func (s *Store) ListPipelineVersions(ctx context.Context, tenant, name string) ([]PipelineVersion, error) {
	out, err := s.listPipelineVersions(ctx, "list pipeline versions", `SELECT `+pipelineVersionCols+` FROM pipeline_versions v
		JOIN pipeline_definitions d ON d.tenant = v.tenant AND d.sha256 = v.sha256
		WHERE v.tenant = $1 AND v.name = $2 ORDER BY v.version`, tenant, name)
	if err == nil && len(out) == 0 {
		return nil, fault.New(fault.NotFound, "pipeline %q not found", name)
	}
	return out, err
}

func (s *Store) listPipelineVersions(ctx context.Context, op, sql string, args ...any) ([]PipelineVersion, error) {
	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, translate(err, op)
	}
	defer rows.Close()
	out := []PipelineVersion{}
	for rows.Next() {
		p, err := scanPipelineVersion(rows)
		if err != nil {
			return nil, translate(err, op)
		}
		out = append(out, p)
	}
	return out, translate(rows.Err(), op)
}

// DeletePipeline deletes a pipeline and its versions; its runs (and the definitions they
// ran) stay.
func (s *Store) DeletePipeline(ctx context.Context, tenant, name string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pipelines WHERE tenant = $1 AND name = $2`, tenant, name)
	if err != nil {
		return translate(err, "delete pipeline")
	}
	if tag.RowsAffected() == 0 {
		return fault.New(fault.NotFound, "pipeline %q not found", name)
	}
	return nil
}

// GetDefinition returns a stored definition by its sha256.
func (s *Store) GetDefinition(ctx context.Context, tenant, sha string) (json.RawMessage, error) {
	var def string
	err := s.pool.QueryRow(ctx, `SELECT definition FROM pipeline_definitions WHERE tenant = $1 AND sha256 = $2`,
		tenant, sha).Scan(&def)
	if err != nil {
		return nil, notFound(err, "get pipeline definition", "pipeline definition %s not found", sha)
	}
	return json.RawMessage(def), nil
}
