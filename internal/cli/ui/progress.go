package ui

import (
	"context"
	"fmt"
	"io"
	"time"

	"charm.land/bubbles/v2/spinner"
	tea "charm.land/bubbletea/v2"
)

// View shows the states of one wait.
type View[S any] interface {
	// Live is the terminal frame for s; spin is the spinner's current frame.
	Live(s S, spin string, elapsed time.Duration) string
	// Lines are the plain lines saying what changed from prev (nil at first) to cur.
	Lines(prev *S, cur S) []string
	// Done reports whether s is final: the caller prints it, the live view never does.
	Done(s S) bool
}

// Watch runs wait, which reports each state it reads through update, and shows the
// states on w: on a terminal (tty) as a live frame redrawn with a spinner and the
// elapsed time, erased when wait returns so that the caller prints the final state
// once; otherwise as plain lines, one per change. initial is shown until the first
// update. It returns what wait returned.
func Watch[S any](ctx context.Context, w io.Writer, tty bool, v View[S], initial S,
	wait func(ctx context.Context, update func(S)) (S, error)) (S, error) {
	if !tty {
		prev := (*S)(nil)
		update := func(s S) {
			for _, l := range v.Lines(prev, s) {
				fmt.Fprintln(w, l)
			}
			prev = &s
		}
		update(initial)
		return wait(ctx, update)
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	m := model[S]{view: v, state: initial, start: time.Now(),
		spin: spinner.New(spinner.WithSpinner(spinner.Dot))}
	// No input (Ctrl-C stays a signal for the caller's context) and no signal
	// handler of its own: the program is a view, the context decides when to stop.
	p := tea.NewProgram(m, tea.WithOutput(w), tea.WithInput(nil), tea.WithoutSignalHandler(), tea.WithContext(ctx))
	var final S
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		final, err = wait(ctx, func(s S) {
			if !v.Done(s) {
				p.Send(stateMsg[S]{s})
			}
		})
		p.Send(doneMsg{})
	}()
	if _, perr := p.Run(); perr != nil {
		cancel() // the view failed or the context ended: stop waiting too
	}
	<-done
	return final, err
}

type stateMsg[S any] struct{ s S }

type doneMsg struct{}

// model is the bubbletea model of a wait: the latest state and a spinner.
type model[S any] struct {
	view  View[S]
	state S
	start time.Time
	spin  spinner.Model
	done  bool
}

func (m model[S]) Init() tea.Cmd { return m.spin.Tick }

func (m model[S]) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case stateMsg[S]:
		m.state = msg.s
	case doneMsg:
		m.done = true
		return m, tea.Quit
	case spinner.TickMsg:
		var cmd tea.Cmd
		m.spin, cmd = m.spin.Update(msg)
		return m, cmd
	}
	return m, nil
}

// View is empty once done, which erases the live frame.
func (m model[S]) View() tea.View {
	if m.done {
		return tea.NewView("")
	}
	return tea.NewView(m.view.Live(m.state, m.spin.View(), time.Since(m.start)))
}
