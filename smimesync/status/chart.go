package status

import (
	"fmt"
	"math"
	"time"
)

// The expiry chart is SVG written here, in the page's template, from the
// geometry below. No Go chart library served:
//   - go-echarts draws in the browser with JavaScript loaded from a CDN:
//     the page has no script and loads nothing;
//   - wcharczuk/go-chart, which renders SVG on the server, is archived
//     (unmaintained); its maintained fork, go-analyze/charts, renders SVG
//     too, but brings a font rasteriser (golang/freetype) to measure its
//     labels, and its SVG has no <title> or <desc> for a screen reader;
//   - gonum/plot renders SVG but brings gonum's numerics and fonts for
//     one bar chart.
//
// One chart of 52 bars is some sixty lines of arithmetic and template,
// with a <title> and <desc>, a title per bar, axis labels, and the same
// numbers as a table beside it.

// Weeks is how many weeks the expiry chart covers: the next 12 months.
const Weeks = 52

// The chart's size in SVG user units; it scales to the page's width.
const (
	chartW, chartH                               = 960, 280
	padLeft, padRight, padTop, padBottom         = 56, 16, 20, 58
	plotW                                        = chartW - padLeft - padRight
	plotH                                        = chartH - padTop - padBottom
	barGap                               float64 = 3
)

// Chart is the expiry chart of one sink: how many users lose their last
// usable certificate in each of the next Weeks weeks (the latest expiry
// of the values the policy kept falls in that week).
type Chart struct {
	// Start is when week 0 starts (the page's time).
	Start time.Time
	// Counts holds, per week, the users whose last usable certificate
	// expires in it.
	Counts [Weeks]int
	// Total is the sum of Counts; Expired counts the users whose kept
	// certificates have all expired since the pass that kept them; Later
	// the users whose last one expires after the chart.
	Total, Expired, Later int
	// Peak is the largest week's count, PeakWeek its index.
	Peak, PeakWeek int

	// Geometry for the template.
	W, H, Left, Top, PlotW, PlotH, Bottom int
	Bars                                  []Bar
	YTicks, XTicks                        []Tick
}

// Bar is one week's bar.
type Bar struct {
	Week       int
	Start      time.Time
	Count      int
	X, Y, BarW float64
	BarH       float64
}

// Tick is an axis label at a position.
type Tick struct {
	Pos   float64
	Label string
}

// expiryChart buckets the users by the expiry of their last kept value:
// lasts calls its function with each user's (a zero time: none), as
// report.Store.Expiries does; nil has none.
func expiryChart(lasts func(func(time.Time)), now time.Time) Chart {
	c := Chart{Start: now.UTC(), W: chartW, H: chartH, Left: padLeft, Top: padTop, PlotW: plotW, PlotH: plotH,
		Bottom: padTop + plotH}
	const week = 7 * 24 * time.Hour
	if lasts == nil {
		lasts = func(func(time.Time)) {}
	}
	lasts(func(last time.Time) {
		switch {
		case last.IsZero():
			// No kept value, or none with an expiry: not on the chart.
		case !last.After(now):
			c.Expired++
		default:
			i := int(last.Sub(now) / week)
			if i >= Weeks {
				c.Later++
				return
			}
			c.Counts[i]++
			c.Total++
		}
	})
	for i, n := range c.Counts {
		if n > c.Peak {
			c.Peak, c.PeakWeek = n, i
		}
	}

	top, step := axisMax(c.Peak)
	slot := float64(plotW) / Weeks
	for i, n := range c.Counts {
		h := float64(n) / float64(top) * plotH
		c.Bars = append(c.Bars, Bar{Week: i, Start: c.Start.Add(time.Duration(i) * week), Count: n,
			X: padLeft + float64(i)*slot + barGap/2, Y: padTop + plotH - h, BarW: slot - barGap, BarH: h})
	}
	for v := 0; v <= top; v += step {
		c.YTicks = append(c.YTicks, Tick{Pos: padTop + plotH - float64(v)/float64(top)*plotH, Label: fmt.Sprint(v)})
	}
	// A label at each week that starts a new month, at least three
	// weeks after the last one.
	lastLabel := -3
	for i := range Weeks {
		start := c.Start.Add(time.Duration(i) * week)
		prev := start.Add(-week)
		if i > 0 && start.Month() == prev.Month() || i-lastLabel < 3 {
			continue
		}
		label := start.Format("Jan")
		if i == 0 || start.Month() == time.January {
			label = start.Format("Jan 2006")
		}
		c.XTicks = append(c.XTicks, Tick{Pos: padLeft + float64(i)*slot, Label: label})
		lastLabel = i
	}
	return c
}

// axisMax is the top of the y axis for a largest value of peak, and the
// step of its ticks: a step of 1, 2 or 5 times a power of ten, at most
// five steps.
func axisMax(peak int) (top, step int) {
	if peak < 1 {
		peak = 1
	}
	step = 1
	for mag := 1; ; mag *= 10 {
		for _, m := range []int{1, 2, 5} {
			step = m * mag
			if int(math.Ceil(float64(peak)/float64(step))) <= 5 {
				return int(math.Ceil(float64(peak)/float64(step))) * step, step
			}
		}
	}
}

// Desc is the chart's text for a screen reader (its <desc>).
func (c Chart) Desc() string {
	if c.Total == 0 {
		return fmt.Sprintf("No user loses their last usable certificate in the %d weeks from %s.", Weeks, day(c.Start))
	}
	return fmt.Sprintf("%d users lose their last usable certificate in the %d weeks from %s; the most, %d, in the week of %s.",
		c.Total, Weeks, day(c.Start), c.Peak, day(c.Bars[c.PeakWeek].Start))
}
