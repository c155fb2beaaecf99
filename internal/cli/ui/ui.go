// Package ui renders the CLI's output: human tables (lipgloss/table), JSON and YAML
// for scripts, coloured statuses when colour is on, and live progress of long waits
// (a bubbletea program with a bubbles spinner on a terminal, plain lines elsewhere).
package ui

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/lipgloss/table"
	"github.com/muesli/termenv"
	"sigs.k8s.io/yaml"
)

// Styles colour text for one writer, or leave it plain when colour is off.
type Styles struct {
	r     *lipgloss.Renderer
	color bool
}

// NewStyles returns styles for w: ANSI colours when color is set, plain text otherwise.
// The profile is set here, never detected, so the output does not depend on the
// process's environment beyond what the caller decided.
func NewStyles(w io.Writer, color bool) Styles {
	r := lipgloss.NewRenderer(w)
	if color {
		r.SetColorProfile(termenv.ANSI)
	} else {
		r.SetColorProfile(termenv.Ascii)
	}
	return Styles{r: r, color: color}
}

// Color reports whether these styles colour.
func (s Styles) Color() bool { return s.color }

func (s Styles) style() lipgloss.Style { return s.r.NewStyle() }

// Bold is str in bold.
func (s Styles) Bold(str string) string { return s.style().Bold(true).Render(str) }

// Faint is str dimmed.
func (s Styles) Faint(str string) string { return s.style().Faint(true).Render(str) }

// Status is a status word coloured by its meaning.
func (s Styles) Status(status string) string {
	var c lipgloss.Color
	switch status {
	case "succeeded":
		c = "2" // green
	case "failed", "timeout", "canceled":
		c = "1" // red
	case "running", "waiting":
		c = "3" // yellow
	case "queued", "skipped", "paused":
		c = "8" // grey
	default:
		return status
	}
	return s.style().Foreground(c).Render(status)
}

// Table renders rows under headers as aligned columns without borders (headers are
// required: lipgloss/table loses a row of a table without them).
func (s Styles) Table(headers []string, rows [][]string) string {
	last := len(headers) - 1
	t := table.New().
		Border(lipgloss.HiddenBorder()).
		BorderTop(false).BorderBottom(false).BorderLeft(false).BorderRight(false).
		BorderHeader(false).BorderColumn(false).
		Headers(headers...).Rows(rows...).
		StyleFunc(func(row, col int) lipgloss.Style {
			st := s.style()
			if col < last {
				st = st.PaddingRight(2)
			}
			if row == table.HeaderRow {
				st = st.Bold(true)
			}
			return st
		})
	return trimLines(t.Render())
}

// Fields renders label/value rows as two aligned columns.
func (s Styles) Fields(rows [][]string) string {
	if len(rows) == 0 {
		return ""
	}
	labels := make([]string, len(rows))
	values := make([]string, len(rows))
	for i, r := range rows {
		labels[i], values[i] = r[0], r[1]
	}
	block := lipgloss.JoinHorizontal(lipgloss.Top,
		s.style().PaddingRight(2).Render(strings.Join(labels, "\n")), strings.Join(values, "\n"))
	return trimLines(block)
}

// trimLines removes the spaces that padding to a block's width leaves at line ends.
func trimLines(block string) string {
	lines := strings.Split(block, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	return strings.Join(lines, "\n") + "\n"
}

// JSON writes v indented, as the API gave it.
func JSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// YAML writes v as YAML with the JSON field names.
func YAML(w io.Writer, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	out, err := yaml.JSONToYAML(raw)
	if err != nil {
		return err
	}
	_, err = w.Write(out)
	return err
}

// Indent is a JSON value indented for reading ("null" when empty).
func Indent(raw json.RawMessage) string {
	if len(raw) == 0 {
		return "null"
	}
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}

// Duration is d for people: "1.7ms", "412ms", "3.2s", "1m5s", "1h", "1h30m".
func Duration(d time.Duration) string {
	switch {
	case d < 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Round(time.Millisecond)/time.Millisecond)
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		s := d.Round(time.Second).String() // "1h0m0s": the zero units at the end go
		if strings.HasSuffix(s, "m0s") {
			s = strings.TrimSuffix(s, "0s")
		}
		if strings.HasSuffix(s, "h0m") {
			s = strings.TrimSuffix(s, "0m")
		}
		return s
	}
}

// Elapsed is a running clock: tenths of seconds, then minutes ("4.2s", "2m5s").
func Elapsed(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

// Millis is a duration in milliseconds as the API reports it.
func Millis(ms float64) string { return Duration(time.Duration(ms * float64(time.Millisecond))) }

// Time is a timestamp for tables: UTC, to the second ("-" when unknown).
func Time(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}
