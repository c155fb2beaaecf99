package core

import "context"

// FunctionTimeoutMS is the timeout of a function's version (0: its latest): the durable
// runner of a pipeline runs a call whose timeout is short as a local activity and a long
// one as a heartbeating activity.
func (s *Service) FunctionTimeoutMS(ctx context.Context, tenant, name string, version int) (int, error) {
	v, err := s.version(ctx, tenant, name, version)
	if err != nil {
		return 0, err
	}
	return v.TimeoutMS, nil
}
