package core

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lambda-microservice/lambda/internal/pipeline"
	"github.com/lambda-microservice/lambda/internal/platform/fault"
	"github.com/lambda-microservice/lambda/internal/store"
)

// catalog answers pipeline.Validate's questions from a tenant's functions.
type catalog struct {
	ctx    context.Context
	s      *Service
	tenant string
}

func (c catalog) Function(name string, version int) (pipeline.FunctionInfo, error) {
	f, err := c.s.store.GetFunction(c.ctx, c.tenant, name)
	if fault.Is(err, fault.NotFound) {
		return pipeline.FunctionInfo{}, nil
	}
	if err != nil {
		return pipeline.FunctionInfo{}, err
	}
	info := pipeline.FunctionInfo{Exists: true, Language: f.Language, Latest: f.Version.Version}
	if version > 0 {
		_, err := c.s.store.GetVersion(c.ctx, c.tenant, name, version)
		switch {
		case err == nil:
			info.Pinned = true
		case !fault.Is(err, fault.NotFound):
			return pipeline.FunctionInfo{}, err
		}
	}
	return info, nil
}

func (c catalog) Limits() pipeline.Limits { return pipeline.Limits{} }

// definition parses and validates a pipeline definition for registration under name
// ("" takes the definition's own): 422 naming the bad steps when it is invalid. It
// returns the version to store (its canonical definition without the name).
func (s *Service) definition(ctx context.Context, tenant, name string, body json.RawMessage) (store.PipelineVersion, error) {
	if !json.Valid(body) {
		return store.PipelineVersion{}, invalid("the pipeline definition is not valid JSON")
	}
	def, err := pipeline.Parse(body)
	if err != nil {
		return store.PipelineVersion{}, validationFault(err)
	}
	if name != "" {
		if def.Name != "" && def.Name != name {
			return store.PipelineVersion{}, invalid("body name %q does not match the path's %q", def.Name, name)
		}
		def.Name = name
	}
	if err := pipeline.Validate(def, catalog{ctx: ctx, s: s, tenant: tenant}); err != nil {
		return store.PipelineVersion{}, validationFault(err)
	}
	name = def.Name
	sha, err := def.SHA256()
	if err != nil {
		return store.PipelineVersion{}, err
	}
	def.Name = ""
	canon, err := def.Canonical()
	if err != nil {
		return store.PipelineVersion{}, err
	}
	return store.PipelineVersion{Tenant: tenant, Name: name, SHA256: sha, Definition: canon}, nil
}

// validationFault makes a pipeline.ValidationError a 422 naming every problem's step.
func validationFault(err error) error {
	var ve *pipeline.ValidationError
	if errors.As(err, &ve) {
		return fault.Wrap(fault.Unprocessable, err, "%s", ve.Error())
	}
	return err
}

// RegisterPipeline registers a new pipeline as version 1; Conflict when the name exists,
// 422 when the definition is invalid (unknown function of the tenant, bad expression,
// duplicate step id, missing catch target...).
func (s *Service) RegisterPipeline(ctx context.Context, tenant string, body json.RawMessage) (store.PipelineVersion, error) {
	p, err := s.definition(ctx, tenant, "", body)
	if err != nil {
		return store.PipelineVersion{}, err
	}
	out, err := s.store.CreatePipeline(ctx, p)
	if err == nil {
		s.forgetPipeline(tenant, out.Name)
	}
	return out, err
}

// UpdatePipeline adds a version of pipeline name (created=true), or returns the latest
// version when its definition is the same.
func (s *Service) UpdatePipeline(ctx context.Context, tenant, name string, body json.RawMessage) (store.PipelineVersion, bool, error) {
	if !NameRE.MatchString(name) {
		return store.PipelineVersion{}, false, fault.New(fault.NotFound, "pipeline %q not found", name)
	}
	// A pipeline of another tenant is not found, whatever the body.
	if _, err := s.store.GetPipeline(ctx, tenant, name, 0); err != nil {
		return store.PipelineVersion{}, false, err
	}
	p, err := s.definition(ctx, tenant, name, body)
	if err != nil {
		return store.PipelineVersion{}, false, err
	}
	out, created, err := s.store.PutPipelineVersion(ctx, p)
	if err == nil {
		s.forgetPipeline(tenant, name)
	}
	return out, created, err
}

// DeletePipeline deletes a pipeline and its versions; its runs stay.
func (s *Service) DeletePipeline(ctx context.Context, tenant, name string) error {
	if err := s.store.DeletePipeline(ctx, tenant, name); err != nil {
		return err
	}
	s.forgetPipeline(tenant, name)
	return nil
}

type cachedPipeline struct {
	p       store.PipelineVersion
	expires time.Time
}

// pipelineVersion reads a pipeline's version (0: the latest) through a short-lived
// in-process cache, as version does for functions: a hot pipeline costs one PostgreSQL
// read per VersionCacheTTL instead of one per run.
func (s *Service) pipelineVersion(ctx context.Context, tenant, name string, version int) (store.PipelineVersion, error) {
	key := versionKey(tenant, name, version)
	now := time.Now()
	if c, ok := s.pipelineVersions.Load(key); ok && now.Before(c.(cachedPipeline).expires) {
		return c.(cachedPipeline).p, nil
	}
	p, err := s.store.GetPipeline(ctx, tenant, name, version)
	if err != nil {
		return store.PipelineVersion{}, err
	}
	if s.cfg.VersionCacheTTL > 0 {
		s.pipelineVersions.Store(key, cachedPipeline{p: p, expires: now.Add(s.cfg.VersionCacheTTL)})
	}
	return p, nil
}

// forgetPipeline drops a pipeline's cached versions after it changed.
func (s *Service) forgetPipeline(tenant, name string) {
	prefix := tenant + "/" + name + "/"
	s.pipelineVersions.Range(func(k, _ any) bool {
		if strings.HasPrefix(k.(string), prefix) {
			s.pipelineVersions.Delete(k)
		}
		return true
	})
}

// compiledKey names a compiled definition: definitions are immutable, named by sha256.
func compiledKey(tenant, sha string) string { return tenant + "/" + sha }

// compiled returns the compiled definition def (of sha256 sha), compiling it once per
// process.
func (s *Service) compiled(tenant, sha string, def json.RawMessage) (*pipeline.Compiled, error) {
	key := compiledKey(tenant, sha)
	if c, ok := s.pipelines.Load(key); ok {
		return c.(*pipeline.Compiled), nil
	}
	d, err := pipeline.Parse(def)
	if err != nil {
		return nil, fmt.Errorf("parse stored pipeline %s: %w", sha, err)
	}
	c, err := pipeline.Compile(d)
	if err != nil {
		return nil, fmt.Errorf("compile stored pipeline %s: %w", sha, err)
	}
	s.pipelines.Store(key, c)
	return c, nil
}

// compiledOf returns a run's compiled definition, reading it from PostgreSQL when this
// process has not compiled it yet.
func (s *Service) compiledOf(ctx context.Context, tenant, sha string) (*pipeline.Compiled, error) {
	if c, ok := s.pipelines.Load(compiledKey(tenant, sha)); ok {
		return c.(*pipeline.Compiled), nil
	}
	def, err := s.store.GetDefinition(ctx, tenant, sha)
	if err != nil {
		return nil, err
	}
	return s.compiled(tenant, sha, def)
}
