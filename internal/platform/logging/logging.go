// Package logging builds the one *zap.Logger each process passes through its constructors.
// The JSON format follows the Elastic Common Schema (ECS) field names so Filebeat can ship
// the lines to Elasticsearch unchanged: @timestamp, log.level, message, log.logger,
// service.name, ecs.version, plus the platform's lambda.* fields.
package logging

import (
	"fmt"
	"io"
	"os"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Config selects the log level and format of a process.
type Config struct {
	Level  string `env:"LAMBDA_LOG_LEVEL" envDefault:"info"`  // debug|info|warn|error
	Format string `env:"LAMBDA_LOG_FORMAT" envDefault:"json"` // json (ECS) | console
}

// ECSVersion is the ECS version the field names follow.
const ECSVersion = "8.11.0"

// New returns a logger for service (api, worker, provider, runtime-python, ...) writing to w
// (os.Stderr when nil).
func New(cfg Config, service string, w io.Writer) (*zap.Logger, error) {
	if w == nil {
		w = os.Stderr
	}
	level, err := zapcore.ParseLevel(cfg.Level)
	if err != nil {
		return nil, fmt.Errorf("logging: level %q: %w", cfg.Level, err)
	}
	var enc zapcore.Encoder
	switch cfg.Format {
	case "json", "":
		enc = zapcore.NewJSONEncoder(zapcore.EncoderConfig{
			TimeKey:        "@timestamp",
			LevelKey:       "log.level",
			NameKey:        "log.logger",
			CallerKey:      "log.origin.function",
			MessageKey:     "message",
			StacktraceKey:  "error.stack_trace",
			LineEnding:     zapcore.DefaultLineEnding,
			EncodeLevel:    zapcore.LowercaseLevelEncoder,
			EncodeTime:     zapcore.ISO8601TimeEncoder,
			EncodeDuration: zapcore.SecondsDurationEncoder,
			EncodeCaller:   zapcore.ShortCallerEncoder,
		})
	case "console":
		ec := zap.NewDevelopmentEncoderConfig()
		ec.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		enc = zapcore.NewConsoleEncoder(ec)
	default:
		return nil, fmt.Errorf("logging: format %q: want json or console", cfg.Format)
	}
	core := zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)
	log := zap.New(core, zap.ErrorOutput(zapcore.Lock(zapcore.AddSync(w))))
	if cfg.Format != "console" {
		log = log.With(zap.String("ecs.version", ECSVersion), zap.String("service.name", service))
	} else {
		log = log.Named(service)
	}
	return log, nil
}

// Field names shared by every process for the platform's own attributes.
const (
	FieldExecutionID = "lambda.execution_id"
	FieldFunction    = "lambda.function"
	FieldRuntime     = "lambda.runtime"
	FieldRequestID   = "http.request.id"
	FieldTraceID     = "trace.id"
)

// Err is zap.Error under the ECS name error.message.
func Err(err error) zap.Field {
	if err == nil {
		return zap.Skip()
	}
	return zap.String("error.message", err.Error())
}
