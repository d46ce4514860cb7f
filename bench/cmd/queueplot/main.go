// Command queueplot reads the output of BenchmarkQueueJobs (its
// "queuejobs round=..." lines) on stdin, and writes to stdout a Markdown
// table of the medians over rounds (jobs per second, ratios to asynq taken
// within each round) and a bar chart of the median jobs per second to the
// PNG named by -o.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var jobsLine = regexp.MustCompile(`queuejobs round=(\d+) conc=(\d+) jobs=(\d+) patterns=([0-9.]+) coalesced=([0-9.]+) asynq=([0-9.]+) ratio=([0-9.]+) coalesced-ratio=([0-9.]+)`)

// series are the figures of one line, in the order of the table.
var series = []string{"patterns", "patterns, Coalesce", "asynq v0.25.1", "patterns / asynq", "patterns Coalesce / asynq"}

func main() {
	out := flag.String("o", "queue_throughput.png", "the PNG to write")
	flag.Parse()
	vals := map[int][][]float64{} // concurrency → series → values over rounds
	rounds := map[string]bool{}
	jobs := ""
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		m := jobsLine.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		c, _ := strconv.Atoi(m[2])
		if vals[c] == nil {
			vals[c] = make([][]float64, len(series))
		}
		for i := range series {
			v, err := strconv.ParseFloat(m[4+i], 64)
			if err != nil {
				log.Fatal(err)
			}
			vals[c][i] = append(vals[c][i], v)
		}
		rounds[m[1]] = true
		jobs = m[3]
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	if len(vals) == 0 {
		log.Fatal("no queuejobs lines in the input")
	}
	var concs []int
	for c := range vals {
		concs = append(concs, c)
	}
	slices.Sort(concs)
	med := func(c, i int) float64 {
		s := slices.Clone(vals[c][i])
		slices.Sort(s)
		return s[len(s)/2]
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Jobs enqueued and processed per second, %s jobs per contender, medians of %d rounds (ratios within a round):\n\n", jobs, len(vals[concs[0]][0]))
	b.WriteString("| handlers |")
	for _, s := range series {
		fmt.Fprintf(&b, " %s |", s)
	}
	b.WriteString("\n|--:|")
	for range series {
		b.WriteString("--:|")
	}
	b.WriteString("\n")
	for _, c := range concs {
		fmt.Fprintf(&b, "| %d |", c)
		for i := range series {
			if i >= 3 {
				fmt.Fprintf(&b, " %.2f |", med(c, i))
			} else {
				fmt.Fprintf(&b, " %.0f |", med(c, i))
			}
		}
		b.WriteString("\n")
	}
	fmt.Print(b.String())

	p := plot.New()
	p.Title.Text = "Queue jobs enqueued and processed per second (handlers doing no work), medians"
	p.Y.Label.Text = "jobs/s"
	w := vg.Points(14)
	colors := []color.Color{color.RGBA{0x33, 0x66, 0xcc, 255}, color.RGBA{0x66, 0x99, 0xee, 255}, color.RGBA{0xcc, 0x33, 0x33, 255}}
	names := make([]string, len(concs))
	for i, c := range concs {
		names[i] = fmt.Sprintf("%d handlers", c)
		if c == 1 {
			names[i] = "1 handler"
		}
	}
	top := 0.0
	for _, c := range concs {
		for si := 0; si < 3; si++ {
			top = max(top, med(c, si))
		}
	}
	p.Y.Min, p.Y.Max = 0, top*1.15
	for si := 0; si < 3; si++ {
		v := make(plotter.Values, len(concs))
		for i, c := range concs {
			v[i] = med(c, si)
		}
		bars, err := plotter.NewBarChart(v, w)
		if err != nil {
			log.Fatal(err)
		}
		bars.LineStyle.Width = 0
		bars.Color = colors[si]
		bars.Offset = w * vg.Length(si-1)
		p.Add(bars)
		p.Legend.Add(series[si], bars)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.NominalX(names...)
	p.Add(plotter.NewGrid())
	if err := p.Save(8*vg.Inch, 5*vg.Inch, *out); err != nil {
		log.Fatal(err)
	}
}
