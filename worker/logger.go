package worker

import (
	"go.temporal.io/sdk/log"
	"go.uber.org/zap"
)

// Logger adapts the process's zap logger to the Temporal SDK's log.Logger, so the SDK's
// own lines (worker start, poll errors, activity retries) share the process's ECS JSON.
func Logger(z *zap.Logger) log.Logger {
	return zapLogger{s: z.WithOptions(zap.AddCallerSkip(1)).Sugar()}
}

type zapLogger struct{ s *zap.SugaredLogger }

var (
	_ log.WithLogger      = zapLogger{}
	_ log.WithSkipCallers = zapLogger{}
)

func (l zapLogger) Debug(msg string, keyvals ...any) { l.s.Debugw(msg, keyvals...) }
func (l zapLogger) Info(msg string, keyvals ...any)  { l.s.Infow(msg, keyvals...) }
func (l zapLogger) Warn(msg string, keyvals ...any)  { l.s.Warnw(msg, keyvals...) }
func (l zapLogger) Error(msg string, keyvals ...any) { l.s.Errorw(msg, keyvals...) }

// With returns a logger that adds keyvals to every line.
func (l zapLogger) With(keyvals ...any) log.Logger { return zapLogger{s: l.s.With(keyvals...)} }

// WithCallerSkip returns a logger that skips n more stack frames for the caller field.
func (l zapLogger) WithCallerSkip(n int) log.Logger {
	return zapLogger{s: l.s.WithOptions(zap.AddCallerSkip(n))}
}
