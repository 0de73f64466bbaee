package main

import (
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// The compare section's charts (gonum.org/v1/plot): two figures, each a
// grid whose rows are figures of merit and whose columns are the
// transports, with one bar per contender kind and route count. Every
// figure carries, under the grid, the machine and the command that
// produced it.

// metric is one row of a figure.
type metric struct {
	title  string
	value  func(s summary) (float64, bool) // false: not measured for s
	format func(v float64) string          // of the bars' labels
	si     bool                            // label the axis 200k, 1.5M
}

// chart is one figure.
type chart struct {
	file    string
	title   string
	metrics []metric
}

var charts = []chart{
	{
		file:  "throughput.png",
		title: "Throughput and CPU: this worker, a consumer group per route, the plain franz-go program",
		metrics: []metric{
			{"records/s (higher is better)", func(s summary) (float64, bool) { return s.recordsPerSec, true }, fmtSI, true},
			{"CPU seconds per million deliveries (lower is better)", func(s summary) (float64, bool) { return s.cpuPerMill, true }, fmtSmall, false},
		},
	},
	{
		file:  "cost.png",
		title: "Broker reads, latency and memory",
		metrics: []metric{
			{"bytes read from the broker per record (lower is better)", func(s summary) (float64, bool) { return s.readPerRecord, true }, fmtSI, true},
			{"p99 delivery latency, ms (lower is better)", func(s summary) (float64, bool) {
				return float64(s.p99) / 1e6, s.hasLatency && s.latDelivered > 0
			}, fmtSmall, false},
			{"peak RSS, MiB (lower is better)", func(s summary) (float64, bool) { return mib(uint64(s.peakRSS)), true }, fmtSmall, false},
		},
	},
}

// kindColors keeps a contender kind's colour the same in every panel.
var kindColors = map[string]color.Color{
	kindWorker: color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	kindGroups: color.RGBA{R: 0xff, G: 0x7f, B: 0x0e, A: 0xff},
	kindPlain:  color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
}

func fmtSI(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case a >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	case a >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

func fmtSmall(v float64) string {
	switch a := math.Abs(v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// ticks are gonum's default ticks labelled in the metric's format.
type ticks struct{ format func(float64) string }

func (t ticks) Ticks(lo, hi float64) []plot.Tick {
	ts := plot.DefaultTicks{}.Ticks(lo, hi)
	for i := range ts {
		if ts[i].Label != "" {
			ts[i].Label = t.format(ts[i].Value)
		}
	}
	return ts
}

// transportsOf are the transports rep measured, in column order.
func transportsOf(sums []summary) []string {
	var out []string
	for _, t := range allTransports {
		for _, s := range sums {
			if s.c.Transport == t {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

func transportTitle(t string) string {
	switch t {
	case transportKafka:
		return "kafka routes"
	case transportHTTP:
		return "http routes"
	}
	return "3 discard routes vs a bare consumer"
}

// panel draws one metric for one transport: x groups are route counts
// (one group for discard), one bar per contender kind.
func panel(sums []summary, transport string, m metric) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = transportTitle(transport)
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.Y.Label.Text = m.title
	p.Y.Label.TextStyle.Font.Size = vg.Points(8)
	p.Y.Min = 0
	p.Y.Tick.Label.Font.Size = vg.Points(7)
	if m.si {
		p.Y.Tick.Marker = ticks{fmtSI}
	}
	p.X.Tick.Label.Font.Size = vg.Points(8)
	p.Legend.Top = true
	p.Legend.TextStyle.Font.Size = vg.Points(7)
	var groups []string // x categories
	slot := func(s summary) string {
		if transport == transportDiscard {
			return "worker: 3 discard routes; bare consumer: none"
		}
		return fmt.Sprintf("%d route%s", s.c.Routes, map[bool]string{true: "s"}[s.c.Routes > 1])
	}
	var routeOrder []int
	for _, s := range sums {
		if s.c.Transport == transport && !slices.Contains(routeOrder, s.c.Routes) {
			routeOrder = append(routeOrder, s.c.Routes)
		}
	}
	slices.Sort(routeOrder)
	for _, n := range routeOrder {
		for _, s := range sums {
			if s.c.Transport == transport && s.c.Routes == n && !slices.Contains(groups, slot(s)) {
				groups = append(groups, slot(s))
			}
		}
	}
	var kinds []string
	for _, k := range allKinds {
		for _, s := range sums {
			if s.c.Transport == transport && s.c.Kind == k && !slices.Contains(kinds, k) {
				kinds = append(kinds, k)
			}
		}
	}
	const barW = 16
	any := false
	top := 0.0
	for ki, k := range kinds {
		vals := make(plotter.Values, len(groups))
		var xys plotter.XYs
		var labels []string
		name := ""
		for _, s := range sums {
			if s.c.Transport != transport || s.c.Kind != k {
				continue
			}
			name = s.c.name()
			v, ok := m.value(s)
			if !ok || math.IsNaN(v) || math.IsInf(v, 0) {
				continue
			}
			gi := slices.Index(groups, slot(s))
			vals[gi] = v
			xys = append(xys, plotter.XY{X: float64(gi), Y: v})
			labels = append(labels, m.format(v))
			top = max(top, v)
			any = true
		}
		bars, err := plotter.NewBarChart(vals, vg.Points(barW))
		if err != nil {
			return nil, err
		}
		bars.Color = kindColors[k]
		bars.LineStyle.Width = 0
		off := vg.Points(barW * (float64(ki) - float64(len(kinds)-1)/2))
		bars.Offset = off
		p.Add(bars)
		p.Legend.Add(name, bars)
		if len(xys) > 0 {
			l, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
			if err != nil {
				return nil, err
			}
			for i := range l.TextStyle {
				l.TextStyle[i].Font.Size = vg.Points(6)
				l.TextStyle[i].XAlign = text.XCenter
			}
			l.Offset = vg.Point{X: off, Y: vg.Points(2)}
			p.Add(l)
		}
	}
	if !any {
		return nil, nil
	}
	p.Y.Max = top * 1.25 // room for the labels and the legend
	p.NominalX(groups...)
	return p, nil
}

// chartFile is ch's file name: bench-<name> for kfake, bench-broker-<name>
// for a real broker, so that both runs' charts can stand side by side.
func chartFile(real bool, ch chart) string {
	if real {
		return "bench-broker-" + ch.file
	}
	return "bench-" + ch.file
}

// writeCharts draws rep's figures into dir and returns their paths
// relative to mdDir (where the markdown that shows them lives).
func writeCharts(rep *compareReport, dir, mdDir string) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	transports := transportsOf(rep.sums)
	if len(transports) == 0 {
		return nil, fmt.Errorf("nothing measured")
	}
	caption := []string{
		"Machine: " + machine(rep.started) + ". Broker: " + rep.broker + ".",
		"Command: " + rep.command,
		fmt.Sprintf("Backlog %d records of %d bytes, %d partitions; latency at %.0f records/s; each contender in its own process; load average %s before, %s after. See docs/benchmarks.md.",
			rep.cfg.records, rep.cfg.valueBytes, rep.cfg.partitions, rep.cfg.latencyRate, rep.loadBefore, rep.loadAfter),
	}
	var out []string
	for _, ch := range charts {
		path := filepath.Join(dir, chartFile(rep.realBroker(), ch))
		if err := drawChart(rep.sums, transports, ch, caption, path); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		rel, err := filepath.Rel(mdDir, path)
		if err != nil {
			rel = path
		}
		out = append(out, filepath.ToSlash(rel))
	}
	return out, nil
}

func drawChart(sums []summary, transports []string, ch chart, caption []string, path string) error {
	rows := make([][]*plot.Plot, len(ch.metrics))
	for i, m := range ch.metrics {
		rows[i] = make([]*plot.Plot, len(transports))
		for j, t := range transports {
			p, err := panel(sums, t, m)
			if err != nil {
				return err
			}
			if p == nil { // nothing to show (latency of discard): an empty tile
				p = plot.New()
				p.HideAxes()
				p.Title.Text = transportTitle(t) + ": not measured"
				p.Title.TextStyle.Font.Size = vg.Points(8)
			}
			rows[i][j] = p
		}
	}
	width := vg.Points(300 * float64(len(transports)))
	const headerH, footerH = 24, 44
	height := vg.Points(220*float64(len(ch.metrics))) + headerH + footerH
	img := vgimg.NewWith(vgimg.UseWH(width, height), vgimg.UseDPI(110), vgimg.UseBackgroundColor(color.White))
	dc := draw.New(img)
	style := func(size float64) draw.TextStyle {
		return text.Style{Color: color.Black, Font: font.From(plot.DefaultFont, vg.Points(size)), Handler: plot.DefaultTextHandler}
	}
	dc.FillText(style(11), vg.Point{X: 8, Y: height - 16}, ch.title)
	for i, line := range caption {
		dc.FillText(style(7), vg.Point{X: 8, Y: footerH - 12 - vg.Points(11*float64(i))}, line)
	}
	grid := draw.Crop(dc, 0, 0, footerH, -headerH)
	tiles := draw.Tiles{Rows: len(rows), Cols: len(transports), PadX: 14, PadY: 14, PadTop: 4, PadLeft: 6, PadRight: 6}
	canvases := plot.Align(rows, tiles, grid)
	for i := range rows {
		for j := range rows[i] {
			rows[i][j].Draw(canvases[i][j])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
