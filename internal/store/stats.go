package store

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// StatsQuery selects a function's calls in Buckets consecutive buckets of Step, the
// first starting at Start.
type StatsQuery struct {
	Tenant   string
	Function string
	Start    time.Time
	Step     time.Duration
	Buckets  int
}

// StatsBucket is one bucket's aggregates: every execution created in it is a call;
// failed and timed-out ones are errors; the latencies are percentiles of the finished
// ones' durations (nil when none finished).
type StatsBucket struct {
	Start  time.Time
	Calls  int
	Errors int
	P50MS  *float64
	P99MS  *float64
}

// statsTimeout bounds one stats query: the console polls it, and a pathological window
// must not hold a connection (the caller's limits keep it to ≤ 24 h, ≤ 1,440 buckets).
const statsTimeout = 5 * time.Second

// FunctionStats aggregates request_logs over the query's buckets, oldest first, every
// bucket present (an empty one has no calls and nil latencies). It reads one function's
// rows of the time range through request_logs_function_time (tenant, function, timestamp).
func (s *Store) FunctionStats(ctx context.Context, q StatsQuery) ([]StatsBucket, error) {
	out := make([]StatsBucket, q.Buckets)
	for i := range out {
		out[i].Start = q.Start.Add(time.Duration(i) * q.Step)
	}
	if q.Buckets <= 0 || q.Step <= 0 {
		return out, nil
	}
	end := q.Start.Add(time.Duration(q.Buckets) * q.Step)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true)`,
			strconv.FormatInt(statsTimeout.Milliseconds(), 10)); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT b, count(*), count(*) FILTER (WHERE status IN ('failed', 'timeout')),
				percentile_cont(0.5) WITHIN GROUP (ORDER BY duration)
					FILTER (WHERE duration IS NOT NULL AND status IN ('succeeded', 'failed', 'timeout')),
				percentile_cont(0.99) WITHIN GROUP (ORDER BY duration)
					FILTER (WHERE duration IS NOT NULL AND status IN ('succeeded', 'failed', 'timeout'))
			FROM (SELECT floor(extract(epoch FROM timestamp - $3::timestamptz)::float8 / $4::float8)::int AS b,
					status, duration
				FROM request_logs
				WHERE tenant = $1 AND function = $2 AND timestamp >= $3 AND timestamp < $5) r
			GROUP BY b ORDER BY b`,
			q.Tenant, q.Function, q.Start, q.Step.Seconds(), end)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var b StatsBucket
			var i int
			if err := rows.Scan(&i, &b.Calls, &b.Errors, &b.P50MS, &b.P99MS); err != nil {
				return err
			}
			if i >= 0 && i < len(out) {
				b.Start = out[i].Start
				out[i] = b
			}
		}
		return rows.Err()
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "57014" { // query_canceled: the statement timeout
		return nil, fault.Wrap(fault.Unavailable, err, "function stats: the query took longer than %s", statsTimeout)
	}
	if err != nil {
		return nil, translate(err, "function stats")
	}
	return out, nil
}
