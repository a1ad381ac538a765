package bench

import (
	"encoding/xml"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
)

// The plot is hand-written SVG: two panels, latency by percentile (the
// usual HdrHistogram log(1/(1-p)) axis) and throughput over time, with the
// baseline overlaid when it was run.

const (
	svgW, svgH       = 1000, 440
	panelW, panelH   = 400, 300
	panelTop         = 70
	panel1X, panel2X = 80, 570
	colorScenario    = "#1f77b4"
	colorBaseline    = "#ff7f0e"
)

type svgSeries struct {
	label string
	color string
	xs    []float64
	ys    []float64
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// niceStep returns a 1-2-5 step so that max spans about n steps.
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

// percentileX maps a percentile to the log(1/(1-p)) axis (in decades).
func percentileX(p float64) float64 {
	if p >= 100 {
		return math.Inf(1)
	}
	return math.Log10(1 / (1 - p/100))
}

func curveSeries(label, color string, c []CurvePoint) (svgSeries, float64) {
	s := svgSeries{label: label, color: color}
	maxX := 0.0
	for _, p := range c {
		if x := percentileX(p.Percentile); !math.IsInf(x, 1) && x > maxX {
			maxX = x
		}
	}
	for _, p := range c {
		x := percentileX(p.Percentile)
		if math.IsInf(x, 1) {
			x = maxX + 0.25 // the maximum, just right of the last resolved percentile
		}
		s.xs = append(s.xs, x)
		s.ys = append(s.ys, float64(p.LatencyUS)/1000) // ms
	}
	return s, maxX + 0.25
}

func timelineSeries(label, color string, tl []TimelinePoint) svgSeries {
	s := svgSeries{label: label, color: color}
	for _, p := range tl {
		s.xs = append(s.xs, p.T)
		s.ys = append(s.ys, p.Throughput)
	}
	return s
}

type panel struct {
	x0, y0       float64 // top-left
	title        string
	xLabel       string
	yLabel       string
	xMax, yMax   float64
	xTicks       []float64
	xTickLabel   func(float64) string
	yStep        float64
	series       []svgSeries
	markerRadius float64
}

func (p *panel) px(x float64) float64 { return p.x0 + x/p.xMax*panelW }
func (p *panel) py(y float64) float64 { return p.y0 + panelH - y/p.yMax*panelH }

func (p *panel) write(b *strings.Builder) {
	fmt.Fprintf(b, `<g class="panel">`+"\n")
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="15" font-weight="bold">%s</text>`+"\n", p.x0, p.y0-12, esc(p.title))
	fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", p.x0, p.y0, panelW, panelH)
	for y := 0.0; y <= p.yMax*1.0001; y += p.yStep {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", p.x0, p.py(y), p.x0+panelW, p.py(y))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="end">%s</text>`+"\n", p.x0-6, p.py(y)+4, esc(trimFloat(y)))
	}
	for _, x := range p.xTicks {
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", p.px(x), p.y0, p.px(x), p.y0+panelH)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11" text-anchor="middle">%s</text>`+"\n", p.px(x), p.y0+panelH+16, esc(p.xTickLabel(x)))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle">%s</text>`+"\n", p.x0+panelW/2, p.y0+panelH+36, esc(p.xLabel))
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="12" text-anchor="middle" transform="rotate(-90 %.1f %.1f)">%s</text>`+"\n",
		p.x0-52, p.y0+panelH/2, p.x0-52, p.y0+panelH/2, esc(p.yLabel))
	for i, s := range p.series {
		if len(s.xs) == 0 {
			continue
		}
		var pts []string
		for j := range s.xs {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", p.px(s.xs[j]), p.py(s.ys[j])))
		}
		fmt.Fprintf(b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", s.color, strings.Join(pts, " "))
		for j := range s.xs {
			fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="%.1f" fill="%s"/>`+"\n", p.px(s.xs[j]), p.py(s.ys[j]), p.markerRadius, s.color)
		}
		ly := p.y0 + 16 + float64(i)*16
		fmt.Fprintf(b, `<rect x="%.1f" y="%.1f" width="12" height="4" fill="%s"/>`+"\n", p.x0+10, ly-5, s.color)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" font-size="11">%s</text>`+"\n", p.x0+28, ly, esc(s.label))
	}
	b.WriteString("</g>\n")
}

func trimFloat(f float64) string {
	s := fmt.Sprintf("%.3f", f)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// percentileLabel names a decade tick: 0%, 90%, 99%, 99.9%, 99.99%, ...
func percentileLabel(decades float64) string {
	switch d := int(math.Round(decades)); {
	case d <= 0:
		return "0%"
	case d == 1:
		return "90%"
	case d == 2:
		return "99%"
	default:
		return "99." + strings.Repeat("9", d-2) + "%"
	}
}

// WriteSVG renders the report's plot.
func (r *Report) WriteSVG(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n")
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif">`+"\n", svgW, svgH, svgW, svgH)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	title := fmt.Sprintf("tokend-bench %s: %s loop, %.0f req/s, p99 %s", r.Scenario, r.Mode, r.Throughput, us(r.Latency.P99))
	if r.BaselineRatio != nil {
		title += fmt.Sprintf(", %.2f× baseline", *r.BaselineRatio)
	}
	fmt.Fprintf(&b, `<text x="%d" y="28" font-size="17">%s</text>`+"\n", panel1X-40, esc(title))

	// Panel 1: latency by percentile.
	lat, xMax := curveSeries(r.Scenario, colorScenario, r.Curve)
	series := []svgSeries{lat}
	if r.Baseline != nil {
		bl, bx := curveSeries("baseline", colorBaseline, r.Baseline.Curve)
		series = append(series, bl)
		xMax = math.Max(xMax, bx)
	}
	xMax = math.Max(xMax, 2.25)
	yMax := 0.0
	for _, s := range series {
		for _, y := range s.ys {
			yMax = math.Max(yMax, y)
		}
	}
	yStep := niceStep(math.Max(yMax, 0.001), 5)
	p1 := panel{
		x0: panel1X, y0: panelTop, title: "Latency by percentile",
		xLabel: "percentile (max at the right end)", yLabel: "latency (ms)",
		xMax: xMax, yMax: math.Ceil(math.Max(yMax, 0.001)/yStep) * yStep, yStep: yStep,
		xTickLabel: percentileLabel, series: series, markerRadius: 2,
	}
	for d := 0.0; d < xMax; d++ {
		p1.xTicks = append(p1.xTicks, d)
	}
	p1.write(&b)

	// Panel 2: throughput over time.
	tp := []svgSeries{timelineSeries(r.Scenario, colorScenario, r.Timeline)}
	if r.Baseline != nil {
		tp = append(tp, timelineSeries("baseline", colorBaseline, r.Baseline.Timeline))
	}
	tMax, rMax := 0.0, 0.0
	for _, s := range tp {
		for i := range s.xs {
			tMax = math.Max(tMax, s.xs[i])
			rMax = math.Max(rMax, s.ys[i])
		}
	}
	tMax = math.Max(tMax, 1)
	rStep := niceStep(math.Max(rMax, 1), 5)
	tStep := niceStep(tMax, 6)
	p2 := panel{
		x0: panel2X, y0: panelTop, title: "Throughput over time",
		xLabel: "seconds into the measured phase", yLabel: "requests/s",
		xMax: math.Ceil(tMax/tStep) * tStep, yMax: math.Ceil(math.Max(rMax, 1)/rStep) * rStep, yStep: rStep,
		xTickLabel: trimFloat, series: tp, markerRadius: 2.5,
	}
	for t := 0.0; t <= p2.xMax*1.0001; t += tStep {
		p2.xTicks = append(p2.xTicks, t)
	}
	p2.write(&b)
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteSVGFile writes the plot to path.
func (r *Report) WriteSVGFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.WriteSVG(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
