package patternsotel_test

import (
	"log"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/patternsotel"
)

// The library's metrics on a Prometheus /metrics endpoint (dashboard.json,
// beside this file, is a Grafana dashboard of them).
func Example_prometheus() {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		log.Fatal(err)
	}
	obs, err := patternsotel.New(&patternsotel.Options{
		MeterProvider: sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp)),
	})
	if err != nil {
		log.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: "localhost:6379"})
	pc, err := patterns.New(rdb, &patterns.Options{Observer: obs})
	if err != nil {
		log.Fatal(err)
	}
	q, err := pc.Queue("jobs", nil)
	if err != nil {
		log.Fatal(err)
	}
	// Depth, in-flight and dead letters of q, read once per scrape.
	if err := obs.ObserveQueue(q, "jobs"); err != nil {
		log.Fatal(err)
	}
	http.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go func() { log.Fatal(http.ListenAndServe("localhost:9464", nil)) }()
	_ = pc // use pc's patterns as usual: every operation is counted and timed
}
