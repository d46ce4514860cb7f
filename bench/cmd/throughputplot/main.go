// Command throughputplot reads the output of BenchmarkThroughput (and the
// "redis-benchmark ... ops/s" lines throughput.sh adds, and the output of
// BenchmarkThroughputRatios) on stdin, and writes to stdout a Markdown table
// of ops/s and of ratios to the floor at the same concurrency, then a table
// of the ratio benchmark's medians, and a bar chart of the first table's
// ratios to the PNG named by -o.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"image/color"
	"log"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var (
	benchLine = regexp.MustCompile(`^BenchmarkThroughput/(.+)/g=(\d+)(?:-\d+)?\s.*\s([0-9.e+]+) ops/s`)
	rbLine    = regexp.MustCompile(`^redis-benchmark (.*): ([0-9.]+) ops/s`)
	ratioLine = regexp.MustCompile(`^BenchmarkThroughputRatios(?:-\d+)?\s+(\d+)\s+(.*)$`)
)

const floor = "floor-evalsha"

func main() {
	out := flag.String("o", "throughput.png", "the PNG to write")
	flag.Parse()
	ops := map[string]map[int]float64{} // series → goroutines → ops/s
	var order []string
	var gs []int
	seenG := map[int]bool{}
	var rb []string
	var ratios *ratioResult
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		line := sc.Text()
		if m := ratioLine.FindStringSubmatch(line); m != nil {
			ratios = parseRatios(m[1], m[2])
			continue
		}
		if m := rbLine.FindStringSubmatch(line); m != nil {
			rb = append(rb, fmt.Sprintf("| redis-benchmark %s | %s ops/s |", m[1], m[2]))
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		g, _ := strconv.Atoi(m[2])
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			log.Fatal(err)
		}
		if ops[m[1]] == nil {
			ops[m[1]] = map[int]float64{}
			order = append(order, m[1])
		}
		ops[m[1]][g] = v
		if !seenG[g] {
			seenG[g] = true
			gs = append(gs, g)
		}
	}
	if err := sc.Err(); err != nil {
		log.Fatal(err)
	}
	if ops[floor] == nil {
		log.Fatalf("no %s lines in the input", floor)
	}
	sort.Ints(gs)
	// The table.
	var b strings.Builder
	b.WriteString("| operation |")
	for _, g := range gs {
		fmt.Fprintf(&b, " ops/s, %d goroutines | × floor |", g)
	}
	b.WriteString("\n|---|")
	for range gs {
		b.WriteString("--:|--:|")
	}
	b.WriteString("\n")
	for _, s := range order {
		fmt.Fprintf(&b, "| %s |", s)
		for _, g := range gs {
			fmt.Fprintf(&b, " %.0f | %.2f |", ops[s][g], ops[s][g]/ops[floor][g])
		}
		b.WriteString("\n")
	}
	fmt.Print(b.String())
	if len(rb) > 0 {
		fmt.Println()
		fmt.Println("| floor, pipelined | |\n|---|--:|")
		fmt.Println(strings.Join(rb, "\n"))
	}
	if ratios != nil {
		fmt.Println()
		fmt.Print(ratios.table())
	}
	// The chart: per series, one bar per concurrency, ratio to the floor.
	p := plot.New()
	p.Title.Text = "Throughput / unpipelined EvalSha `return 1` at the same concurrency"
	p.Y.Label.Text = "× floor"
	w := vg.Points(6)
	top := 0.0
	for _, s := range order {
		for _, g := range gs {
			top = max(top, ops[s][g]/ops[floor][g])
		}
	}
	p.Y.Min, p.Y.Max = 0, top*1.15
	colors := []color.Color{color.RGBA{0x99, 0x99, 0x99, 255}, color.RGBA{0x33, 0x66, 0xcc, 255}, color.RGBA{0xcc, 0x33, 0x33, 255}}
	for gi, g := range gs {
		vals := make(plotter.Values, len(order))
		for i, s := range order {
			vals[i] = ops[s][g] / ops[floor][g]
		}
		bars, err := plotter.NewBarChart(vals, w)
		if err != nil {
			log.Fatal(err)
		}
		bars.LineStyle.Width = 0
		bars.Color = colors[gi%len(colors)]
		bars.Offset = w * vg.Length(gi-len(gs)/2)
		p.Add(bars)
		p.Legend.Add(fmt.Sprintf("%d goroutines", g), bars)
	}
	p.Legend.Top = true
	p.NominalX(order...)
	p.X.Tick.Label.Rotation = 0.9
	p.X.Tick.Label.XAlign = -1
	p.X.Tick.Label.YAlign = -0.5
	p.Add(plotter.NewGrid())
	if err := p.Save(11*vg.Inch, 6*vg.Inch, *out); err != nil {
		log.Fatal(err)
	}
}

// ratioResult is the line of BenchmarkThroughputRatios: its rounds and its
// metrics, in the order printed.
type ratioResult struct {
	rounds string
	units  []string
	values map[string]float64
}

func parseRatios(rounds, rest string) *ratioResult {
	r := &ratioResult{rounds: rounds, values: map[string]float64{}}
	f := strings.Fields(rest)
	for i := 0; i+1 < len(f); i += 2 {
		v, err := strconv.ParseFloat(f[i], 64)
		if err != nil {
			log.Fatalf("BenchmarkThroughputRatios: %q: %v", f[i], err)
		}
		if f[i+1] == "ns/op" { // the time of a round
			continue
		}
		r.units = append(r.units, f[i+1])
		r.values[f[i+1]] = v
	}
	return r
}

// table returns the ratios (within a round, medians over rounds), then each
// contender's median ops/s and the token bucket's latency at 1 goroutine.
func (r *ratioResult) table() string {
	var b strings.Builder
	fmt.Fprintf(&b, "At 64 goroutines, medians of %s rounds, ratios within a round (BenchmarkThroughputRatios):\n\n", r.rounds)
	b.WriteString("| ratio | median |\n|---|--:|\n")
	var rates, lat []string
	for _, u := range r.units {
		switch {
		case strings.HasSuffix(u, "-ops/s"):
			rates = append(rates, u)
		case strings.HasSuffix(u, "ns/op"):
			lat = append(lat, u)
		default:
			name := u
			if u == "tb-on/off-g1-latency" {
				name = "tb-on/tb-off latency (ns/op), 1 goroutine"
			}
			fmt.Fprintf(&b, "| %s | %.2f |\n", name, r.values[u])
		}
	}
	b.WriteString("\n| contender | median ops/s |\n|---|--:|\n")
	for _, u := range rates {
		fmt.Fprintf(&b, "| %s | %.0f |\n", strings.TrimSuffix(u, "-ops/s"), r.values[u])
	}
	for _, u := range lat {
		fmt.Fprintf(&b, "| %s, 1 goroutine | %.0f ns/op |\n", strings.TrimSuffix(u, "-g1-ns/op"), r.values[u])
	}
	return b.String()
}
