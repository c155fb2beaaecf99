package store

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/lambda-microservice/lambda/internal/platform/fault"
)

// cursor is the position after a page's last row in a newest-first list: its time and id.
type cursor struct {
	T  time.Time `json:"t"`
	ID string    `json:"i"`
}

// encode is the cursor as the opaque string a client passes back.
func (c cursor) encode() string {
	raw, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(raw)
}

// decodeCursor reads an opaque cursor; a malformed one is Invalid.
func decodeCursor(s string) (time.Time, uuid.UUID, error) {
	raw, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err == nil {
		err = json.Unmarshal(raw, &c)
	}
	uid, uerr := uuid.Parse(c.ID)
	if err != nil || uerr != nil {
		return time.Time{}, uuid.UUID{}, fault.New(fault.Invalid, "invalid cursor")
	}
	return c.T, uid, nil
}

// filter is a list's WHERE terms and their arguments ($1… in order).
type filter struct {
	where []string
	args  []any
}

// eq adds col = v.
func (f *filter) eq(col string, v any) {
	f.args = append(f.args, v)
	f.where = append(f.where, fmt.Sprintf("%s = $%d", col, len(f.args)))
}

// eqUnlessEmpty adds col = v when v is not empty (an unset filter field).
func (f *filter) eqUnlessEmpty(col, v string) {
	if v != "" {
		f.eq(col, v)
	}
}

// listPage is one page of a newest-first list, paged by keyset on (timeCol, id): the rows
// of selectFrom (`SELECT cols FROM table`) matching f after the position in the opaque
// cursor cur, at most limit of them, and the cursor of the next page ("" after the last).
// pos gives a row's time and id.
func listPage[T any](ctx context.Context, s *Store, op, selectFrom, timeCol string, f filter, cur string,
	limit int, scan func(pgx.Row) (T, error), pos func(T) (time.Time, string)) ([]T, string, error) {
	if cur != "" {
		t, uid, err := decodeCursor(cur)
		if err != nil {
			return nil, "", err
		}
		f.args = append(f.args, t, uid)
		f.where = append(f.where, fmt.Sprintf("(%s, id) < ($%d, $%d)", timeCol, len(f.args)-1, len(f.args)))
	}
	args := append(f.args, limit+1)
	rows, err := s.pool.Query(ctx, selectFrom+` WHERE `+strings.Join(f.where, " AND ")+
		fmt.Sprintf(` ORDER BY %s DESC, id DESC LIMIT $%d`, timeCol, len(args)), args...)
	if err != nil {
		return nil, "", translate(err, op)
	}
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", translate(err, op)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", translate(err, op)
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		t, id := pos(out[len(out)-1])
		next = cursor{T: t, ID: id}.encode()
	}
	return out, next, nil
}
