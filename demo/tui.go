package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/prometheus/prometheus/model/labels"
	"golang.org/x/term"
)

// runTUI shows the live view until ctx ends, the worker stops or the user
// quits, then leaves a summary on the normal screen.
func runTUI(ctx context.Context, d *running, out io.Writer) error {
	m := newModel(lipgloss.NewRenderer(out), d.worker.Addr(), d.figures.step)
	opts := []tea.ProgramOption{tea.WithOutput(out), tea.WithAltScreen(), tea.WithoutSignalHandler()}
	if !term.IsTerminal(int(os.Stdin.Fd())) {
		// No keys to read; Ctrl-C arrives as SIGINT and cancels ctx.
		opts = append(opts, tea.WithInput(nil))
	}
	p := tea.NewProgram(m, opts...)

	quit := make(chan struct{})
	fed := make(chan Figures, 1)
	go func() {
		var last Figures
		defer func() { fed <- last }()
		tick := time.NewTicker(d.opts.tick)
		defer tick.Stop()
		for {
			select {
			case <-quit:
				return
			case <-ctx.Done():
				p.Quit()
				return
			case <-d.workerExited:
				p.Quit()
				return
			case <-tick.C:
				last = d.sample()
				p.Send(figuresMsg(last))
			}
		}
	}()
	_, err := p.Run()
	close(quit)
	last := <-fed
	if last.Elapsed > 0 {
		fmt.Fprintln(out, statusLine(last))
		fmt.Fprintln(out, summary(last))
	}
	if errors.Is(err, tea.ErrProgramKilled) || errors.Is(err, tea.ErrInterrupted) {
		return nil
	}
	return err
}

// figuresMsg carries a new sample to the model.
type figuresMsg Figures

// model is the live view. It is laid out for a terminal of viewWidth ×
// viewHeight; a larger one shows the same, a smaller one cuts the view and
// says what it needs.
type model struct {
	st            styles
	addr          string // where /metrics is served
	every         string // how often the rules are evaluated
	f             Figures
	have          bool
	width, height int // of the terminal; 0 until known
}

// The size the live view is laid out for: the classic terminal.
const (
	viewWidth  = 80
	viewHeight = 24
)

type styles struct {
	title, head, dim, bold, ok, warn, bad, info lipgloss.Style
	r                                           *lipgloss.Renderer
}

func newModel(r *lipgloss.Renderer, addr string, every time.Duration) model {
	s := r.NewStyle
	return model{
		addr: addr, every: dur(every),
		st: styles{
			r:     r,
			title: s().Bold(true).Foreground(lipgloss.Color("15")).Background(lipgloss.Color("4")).Padding(0, 1),
			head:  s().Bold(true).Underline(true),
			dim:   s().Foreground(lipgloss.Color("8")),
			bold:  s().Bold(true),
			ok:    s().Foreground(lipgloss.Color("2")),
			warn:  s().Foreground(lipgloss.Color("3")),
			bad:   s().Foreground(lipgloss.Color("1")).Bold(true),
			info:  s().Foreground(lipgloss.Color("6")),
		},
	}
}

func (m model) Init() tea.Cmd { return nil }

func (m model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case figuresMsg:
		m.f, m.have = Figures(msg), true
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
	case tea.KeyMsg:
		switch msg.String() {
		case "q", "Q", "esc", "ctrl+c":
			return m, tea.Quit
		}
	}
	return m, nil
}

// Column widths of the route table; a row is at most 79 columns.
const (
	colRoute = 10
	barWidth = 10
)

func (m model) View() string {
	st, f := m.st, m.f
	var lines []string
	add := func(s ...string) { lines = append(lines, strings.Join(s, "")) }

	add(st.title.Render("Receiver Fanout demo"), "  ", st.bold.Render("t="+secs(f.Elapsed)), "  ", st.dim.Render("metrics "+m.addr+"  q quits"))
	if m.width > 0 && m.height > 0 && (m.width < viewWidth || m.height < viewHeight) {
		add(st.warn.Render(fmt.Sprintf("this view needs %d×%d, the terminal is %d×%d: enlarge it, or run with --plain", viewWidth, viewHeight, m.width, m.height)))
	}
	add(m.timeline())
	if !m.have {
		add("", "starting…")
		return m.fit(lines)
	}

	add(st.head.Render("GOALS"))
	for i, g := range f.Goals {
		add(" ", m.goalMark(g.State), fmt.Sprintf(" %d %-38s ", i+1, g.Title), st.dim.Render(g.Detail))
	}

	for i := range f.Receivers {
		r := &f.Receivers[i]
		add(st.head.Render(fmt.Sprintf("%-8s", r.Topic)), " in ", st.bold.Render(perSec(r.IngestRate)), st.dim.Render(" of "+perSec(r.ProduceRate)),
			fmt.Sprintf("  lag %d / %.1fs  ", r.LagRecords, r.LagSeconds), m.partitions(r))
		if i == 0 {
			add(st.dim.Render(fmt.Sprintf("  %-*s %9s %7s %7s  %-*s %7s %5s", colRoute, "route",
				"delivered", "rate", "p99", barWidth+5, "queue", "retries", "dlq")))
		}
		for j := range r.Routes {
			rt := &r.Routes[j]
			row := fmt.Sprintf("  %-*s %9d %7s %7s  ", colRoute, clip(rt.Name, colRoute), rt.Delivered, perSec(rt.Rate), ms(rt.P99))
			tail := fmt.Sprintf(" %7d %5d", rt.Retries, rt.DeadLetters)
			if flag := routeFlag(rt); flag != "" {
				style := st.bad
				if rt.Detached() {
					style = st.warn // nothing waits on it but its own records
				}
				tail += " " + style.Render(flag)
			}
			add(row, m.bar(rt.Fill()), tail)
			if rt.Spill != nil {
				add("  ", m.spill(rt))
			}
		}
	}

	firing := 0
	for _, a := range f.Alerts {
		if a.State == AlertFiring {
			firing++
		}
	}
	add(st.head.Render("ALERTS"), st.dim.Render(fmt.Sprintf("  rules.yml every %s: %d firing, %d pending", m.every, firing, len(f.Alerts)-firing)))
	if f.Problem != "" {
		add("  ", st.bad.Render(f.Problem))
	}
	if len(f.Alerts) == 0 {
		add("  ", st.ok.Render("none"))
	}
	// The alerts get the rows left; the rest are counted.
	rows := m.height
	if rows <= 0 {
		rows = viewHeight
	}
	room := max(1, rows-len(lines))
	panel := alertRows(f.Alerts)
	for i := range panel {
		a := &panel[i]
		if i == room-1 && len(panel) > room {
			add("  ", st.dim.Render(fmt.Sprintf("… and %d more", len(panel)-i)))
			break
		}
		sev := st.info
		switch a.Severity {
		case "critical":
			sev = st.bad
		case "warning":
			sev = st.warn
		}
		add("  ", sev.Render(fmt.Sprintf("%-8s", a.Severity)), " ", fmt.Sprintf("%-26s %-16s ", clip(a.Name, 26), clip(a.target, 16)), m.progress(&a.Alert))
	}
	return m.fit(lines)
}

// progress shows how long the alert's condition has held against its
// for: while pending, and for how long keep_firing_for still holds it
// once its condition cleared.
func (m model) progress(a *Alert) string {
	switch {
	case a.State == AlertPending:
		fill := 0.0
		if a.For > 0 {
			fill = min(1, float64(a.Held)/float64(a.For))
		}
		n := int(fill * 5)
		return m.st.warn.Render("pending ") + m.st.warn.Render(strings.Repeat("█", n)) + m.st.dim.Render(strings.Repeat("░", 5-n)) +
			fmt.Sprintf(" %s/%s", dur(a.Held), dur(a.For))
	case a.Kept:
		return m.st.bad.Render("FIRING") + m.st.dim.Render(fmt.Sprintf(" cleared %s/%s", dur(a.Cleared), dur(a.KeepFiringFor)))
	case a.For == 0:
		return m.st.bad.Render("FIRING") + fmt.Sprintf(" %s", dur(a.Held)) + m.st.dim.Render(" (no for:)")
	}
	return m.st.bad.Render("FIRING") + fmt.Sprintf(" %s", dur(a.Held)) + m.st.dim.Render(fmt.Sprintf(" ≥ for %s", dur(a.For)))
}

// alertRow is one row of the alert panel: an alert, or several that
// differ only by partition (their target lists the partitions; the
// longest-held one stands for them).
type alertRow struct {
	Alert
	target string
}

func alertRows(alerts []Alert) []alertRow {
	var rows []alertRow
	index := map[string]int{}
	for _, a := range alerts {
		lb := labels.NewBuilder(a.Labels)
		lb.Del("partition")
		key := fmt.Sprint(a.State, a.Kept, lb.Labels())
		i, ok := index[key]
		if !ok || a.Labels.Get("partition") == "" {
			index[key] = len(rows)
			rows = append(rows, alertRow{Alert: a, target: a.Target()})
			continue
		}
		r := &rows[i]
		r.target += "," + a.Labels.Get("partition")
		if a.Held > r.Held {
			r.Alert = a
		}
	}
	return rows
}

// timeline says where the scripted congestion stands.
func (m model) timeline() string {
	st, p := m.st, m.f.Phase
	what := topicOrders + "/" + routeCongested
	switch {
	case !p.Joined:
		return st.warn.Render("joining the consumer group…")
	case p.Congested:
		return st.bad.Render(fmt.Sprintf("%s is CONGESTED since t=%s", what, secs(p.Start))) +
			fmt.Sprintf(" · recovers at t=%s (in %s)", secs(p.End), secs(max(0, p.End-m.f.Elapsed)))
	case p.Over:
		return st.ok.Render(fmt.Sprintf("%s was congested t=%s–%s; %s", what, secs(p.Start), secs(p.End), phaseTag(m.f)))
	}
	return fmt.Sprintf("normal operation · %s congests at t=%s (in %s)", what, secs(p.Start), secs(max(0, p.Start-m.f.Elapsed)))
}

// spill is the line under a route with spill: where its spill stands.
func (m model) spill(rt *RouteFigures) string {
	st, sp := m.st, rt.Spill
	switch {
	case rt.Detached():
		return st.warn.Render(fmt.Sprintf("↳ DETACHED since t=%s", secs(max(0, sp.DetachedAt)))) +
			fmt.Sprintf(" · backlog %d records, %.1fs old", sp.Backlog, sp.BacklogAge) + st.dim.Render(fmt.Sprintf(" · %d parked", sp.Spilled))
	case sp.ReattachedAt >= 0:
		return st.ok.Render(fmt.Sprintf("↳ re-attached t=%s", secs(sp.ReattachedAt))) +
			fmt.Sprintf(" · was detached t=%s–%s · %d parked, %d delivered", secs(sp.DetachedAt), secs(sp.ReattachedAt), sp.Spilled, sp.Delivered)
	}
	return st.dim.Render(fmt.Sprintf("↳ attached · detaches to %s once congested %s", sp.Topic, short(sp.After)))
}

func (m model) goalMark(s GoalState) string {
	switch s {
	case GoalMet:
		return m.st.ok.Render("✔")
	case GoalFailing:
		return m.st.bad.Render("✘")
	}
	return m.st.warn.Render("…")
}

// partitions draws one block a partition, red when paused.
func (m model) partitions(r *ReceiverFigures) string {
	var b strings.Builder
	for _, p := range r.Partitions {
		if p.Paused {
			b.WriteString(m.st.bad.Render("■"))
		} else {
			b.WriteString(m.st.ok.Render("■"))
		}
	}
	n := r.Paused()
	label := fmt.Sprintf(" %d/%d paused", n, len(r.Partitions))
	if n > 0 {
		return b.String() + m.st.bad.Render(label)
	}
	return b.String() + label
}

// bar draws a queue's fill, with its percentage.
func (m model) bar(fill float64) string {
	fill = min(max(fill, 0), 1)
	n := int(fill*barWidth + 0.5)
	style := m.st.ok
	switch {
	case fill >= 0.9:
		style = m.st.bad
	case fill >= 0.5:
		style = m.st.warn
	}
	return style.Render(strings.Repeat("█", n)) + m.st.dim.Render(strings.Repeat("░", barWidth-n)) + fmt.Sprintf(" %3.0f%%", 100*fill)
}

// fit joins the lines, each cut to the terminal's width (viewWidth until
// it is known), and no more of them than its height.
func (m model) fit(lines []string) string {
	width, height := viewWidth, m.height
	if m.width > 0 {
		width = m.width
	}
	if height > 0 && len(lines) > height {
		lines = append(lines[:height-1:height-1], m.st.dim.Render(fmt.Sprintf("… %d more lines", len(lines)-height+1)))
	}
	return m.st.r.NewStyle().MaxWidth(width).Render(strings.Join(lines, "\n"))
}

func clip(s string, n int) string {
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}
