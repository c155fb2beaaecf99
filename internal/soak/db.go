package soak

import (
	"context"
	"encoding/json"
	"time"

	"github.com/jackc/pgx/v5"
)

// The hash of a row covers what a final row must never change again.
const (
	execHash = `md5(concat_ws('|', id::text, status, result::text, error::text, finished_at::text, attempts::text))`
	runHash  = `md5(concat_ws('|', id::text, status, output::text, error::text, finished_at::text))`
)

// ReadDB reads every execution, run and run step of the soak's database.
func ReadDB(ctx context.Context, dbURL string) (DB, error) {
	var db DB
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		return db, err
	}
	defer c.Close(context.WithoutCancel(ctx))
	rows, err := c.Query(ctx, `SELECT id::text, status, coalesce(result::text, ''), coalesce(payload->>'k', ''), mode,
		coalesce(run_id::text, ''), coalesce(step_id, ''), coalesce(session_id::text, ''), version, `+execHash+`
		FROM request_logs`)
	if err != nil {
		return db, err
	}
	for rows.Next() {
		var e ExecRow
		var result string
		if err := rows.Scan(&e.ID, &e.Status, &result, &e.Key, &e.Mode, &e.RunID, &e.StepID, &e.Session, &e.Index, &e.Hash); err != nil {
			return db, err
		}
		e.Result = json.RawMessage(result)
		db.Execs = append(db.Execs, e)
	}
	if err := rows.Err(); err != nil {
		return db, err
	}
	steps := map[string][]StepRow{}
	rows, err = c.Query(ctx, `SELECT run_id::text, step_id, status FROM run_steps`)
	if err != nil {
		return db, err
	}
	for rows.Next() {
		var run string
		var s StepRow
		if err := rows.Scan(&run, &s.ID, &s.Status); err != nil {
			return db, err
		}
		steps[run] = append(steps[run], s)
	}
	if err := rows.Err(); err != nil {
		return db, err
	}
	rows, err = c.Query(ctx, `SELECT id::text, status, coalesce(idempotency_key, ''), coalesce(output::text, ''), `+runHash+` FROM runs`)
	if err != nil {
		return db, err
	}
	for rows.Next() {
		var r RunRow
		var out string
		if err := rows.Scan(&r.ID, &r.Status, &r.Key, &out, &r.Hash); err != nil {
			return db, err
		}
		r.Output = json.RawMessage(out)
		r.Steps = steps[r.ID]
		db.Runs = append(db.Runs, r)
	}
	return db, rows.Err()
}

// TakeSnapshot hashes every final row now.
func TakeSnapshot(ctx context.Context, dbURL string) (*Snapshot, error) {
	db, err := ReadDB(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	s := &Snapshot{At: time.Now(), Execs: map[string]string{}, Runs: map[string]string{}}
	for _, e := range db.Execs {
		if finalExec[e.Status] {
			s.Execs[e.ID] = e.Hash
		}
	}
	for _, r := range db.Runs {
		if finalRun[r.Status] {
			s.Runs[r.ID] = r.Hash
		}
	}
	return s, nil
}

// pending counts the accepted async executions and runs of the history not final yet.
func pending(records []Record, db DB) int {
	execs := map[string]string{}
	for _, e := range db.Execs {
		execs[e.ID] = e.Status
	}
	runs := map[string]string{}
	for _, r := range db.Runs {
		runs[r.ID] = r.Status
	}
	n := 0
	for i := range records {
		r := &records[i]
		if !r.Acknowledged() {
			continue
		}
		switch r.Kind {
		case Async:
			if !finalExec[execs[r.ID]] {
				n++
			}
		case RunAsync, RunSync:
			if !finalRun[runs[r.ID]] {
				n++
			}
		}
	}
	return n
}
