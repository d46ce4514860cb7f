// Command patterns runs the library's demo and manages its Lua scripts.
//
// Usage:
//
//	patterns demo [NAME...]    show each pattern working (all by default)
//	patterns scripts           list the embedded scripts with their SHA1s
//	patterns scripts NAME      print one script
//	patterns load              preload every script into the server
//	patterns functions         print the Functions library; name, list, load
//	patterns doctor            check the server against the patterns' needs
//	patterns inspect           show what the patterns keep under a prefix
//	patterns acl               print the least-privilege ACL rule for a prefix
//	patterns queue             stats, peek, redrive or purge a queue; its workers, schedules
//
// demo and load use REDIS_URL (e.g. redis://localhost:6379/0, or
// redis://host1:6379,host2:6379 with -cluster; rediss:// for TLS, where
// load and doctor take -tls-ca for a private CA and -tls-cert and -tls-key
// for mutual TLS). When REDIS_URL is unset, demo
// starts a throwaway Redis (a container when Docker answers and
// PATTERNS_REDIS_IMAGE names an image, else a redis-server process) and
// removes it afterwards.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redispatterns/patterns"
	"github.com/redispatterns/patterns/internal/redisserver"
)

// demo is one pattern's part of `patterns demo`.
type demo struct {
	name string
	run  func(ctx context.Context, pc *patterns.Client, w io.Writer) error
}

// demos is filled by the init functions of the demo_*.go files.
var demos []demo

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "patterns:", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  patterns demo [-cluster] [NAME...]  show each pattern working
  patterns scripts [NAME]             list the embedded scripts, or print one
  patterns load [-cluster] [TLS]      preload every script into REDIS_URL's server
  patterns functions [name|list]      print the Functions library, its name or its functions
  patterns functions load [-replace] [-cluster|-sentinel MASTER] [TLS]
                                      load the Functions library on every primary
  patterns doctor [-cluster|-sentinel MASTER] [-json] [-prefix P] [-patterns ...] [-acl-user U] [TLS]
                                      check REDIS_URL's server against the patterns' needs
  patterns inspect [-cluster] [-json] -prefix P [...] [TLS]
                                      show what the patterns keep under a prefix
  patterns acl [-prefix P] [-patterns lock,ratelimit,...] [-user U] [-password P]
                                      print the least-privilege ACL rule for the library
  patterns queue stats|peek|redrive|purge|result|workers|groups|schedules [-cluster] [-prefix P] [...] [TLS] NAME [ID...]
                                      a queue's stats, messages, dead letters, results, live workers, groups, schedules
TLS: a rediss:// REDIS_URL, with -tls-ca FILE for a private CA and
-tls-cert FILE -tls-key FILE for mutual TLS.
`)
}

func run(args []string, w io.Writer) error {
	if len(args) == 0 {
		usage(w)
		return fmt.Errorf("no command")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	switch args[0] {
	case "scripts":
		return cmdScripts(args[1:], w)
	case "doctor":
		return cmdDoctor(ctx, args[1:], w)
	case "functions":
		return cmdFunctions(ctx, args[1:], w)
	case "inspect":
		return cmdInspect(ctx, args[1:], w)
	case "acl":
		return cmdACL(args[1:], w)
	case "queue":
		return cmdQueue(ctx, args[1:], w)
	case "load":
		fs := flag.NewFlagSet("load", flag.ContinueOnError)
		cluster := fs.Bool("cluster", false, "REDIS_URL names a Redis Cluster")
		tf := addTLSFlags(fs)
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		url := os.Getenv("REDIS_URL")
		if url == "" {
			return fmt.Errorf("load: set REDIS_URL")
		}
		rdb, err := connectWith(url, *cluster, tf)
		if err != nil {
			return err
		}
		defer rdb.Close()
		pc, err := patterns.New(rdb, nil)
		if err != nil {
			return err
		}
		if err := pc.Load(ctx); err != nil {
			return err
		}
		fmt.Fprintf(w, "loaded %d scripts\n", len(patterns.Scripts()))
		return nil
	case "demo":
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		cluster := fs.Bool("cluster", false, "REDIS_URL names a Redis Cluster")
		if err := fs.Parse(args[1:]); err != nil {
			return err
		}
		return cmdDemo(ctx, fs.Args(), *cluster, w)
	case "help", "-h", "-help", "--help":
		usage(w)
		return nil
	default:
		usage(w)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func cmdScripts(args []string, w io.Writer) error {
	all := patterns.Scripts()
	if len(args) == 0 {
		for _, s := range all {
			fmt.Fprintf(w, "%-28s %s\n", s.Name, s.SHA1)
		}
		return nil
	}
	for _, s := range all {
		if s.Name == strings.TrimSuffix(args[0], ".lua") {
			_, err := io.WriteString(w, s.Source)
			return err
		}
	}
	return fmt.Errorf("no script %q (see `patterns scripts`)", args[0])
}

// connect parses a redis:// or rediss:// URL; with cluster, its
// comma-separated hosts are the cluster's seed nodes.
func connect(url string, cluster bool) (redis.UniversalClient, error) {
	return connectWith(url, cluster, nil)
}

// connectWith is connect with the TLS flags tf (nil: none).
func connectWith(url string, cluster bool, tf *tlsFlags) (redis.UniversalClient, error) {
	if cluster {
		url = commaHosts(url)
		opt, err := redis.ParseClusterURL(url)
		if err != nil {
			return nil, err
		}
		if opt.TLSConfig, err = tf.apply(url, opt.TLSConfig); err != nil {
			return nil, err
		}
		return redis.NewClusterClient(opt), nil
	}
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	if opt.TLSConfig, err = tf.apply(url, opt.TLSConfig); err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// tlsFlags are the TLS flags of the commands that connect; a rediss:// URL
// turns TLS on, they add a private CA and a client certificate.
type tlsFlags struct{ ca, cert, key string }

func addTLSFlags(fs *flag.FlagSet) *tlsFlags {
	tf := &tlsFlags{}
	fs.StringVar(&tf.ca, "tls-ca", "", "PEM file of the CA that signed the server's certificate (default: the system's)")
	fs.StringVar(&tf.cert, "tls-cert", "", "PEM file of the client certificate, for mutual TLS (with -tls-key)")
	fs.StringVar(&tf.key, "tls-key", "", "PEM file of the client certificate's key")
	return tf
}

// apply adds the flags to cfg, the TLS configuration parsed from url (nil
// unless rediss://).
func (tf *tlsFlags) apply(url string, cfg *tls.Config) (*tls.Config, error) {
	if tf == nil || (tf.ca == "" && tf.cert == "" && tf.key == "") {
		return cfg, nil
	}
	if cfg == nil || !strings.HasPrefix(url, "rediss://") {
		return nil, fmt.Errorf("-tls-ca, -tls-cert and -tls-key need a rediss:// URL")
	}
	cfg = cfg.Clone()
	if tf.ca != "" {
		pem, err := os.ReadFile(tf.ca)
		if err != nil {
			return nil, fmt.Errorf("-tls-ca: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-tls-ca: no PEM certificate in %s", tf.ca)
		}
	}
	if (tf.cert == "") != (tf.key == "") {
		return nil, fmt.Errorf("-tls-cert and -tls-key go together")
	}
	if tf.cert != "" {
		c, err := tls.LoadX509KeyPair(tf.cert, tf.key)
		if err != nil {
			return nil, fmt.Errorf("-tls-cert/-tls-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	return cfg, nil
}

func cmdDemo(ctx context.Context, names []string, cluster bool, w io.Writer) error {
	var rdb redis.UniversalClient
	if url := os.Getenv("REDIS_URL"); url != "" {
		var err error
		if rdb, err = connect(url, cluster); err != nil {
			return err
		}
		fmt.Fprintf(w, "Redis: %s\n", url)
	} else {
		sctx, cancel := context.WithTimeout(ctx, time.Minute)
		srv, err := redisserver.Start(sctx)
		cancel()
		if err != nil {
			return fmt.Errorf("demo: no REDIS_URL and no throwaway Redis: %w", err)
		}
		defer srv.Close()
		if rdb, err = srv.Client(); err != nil {
			return err
		}
		fmt.Fprintf(w, "Redis: a throwaway server (%s) at %s, removed at the end\n", srv.Kind, srv.Addr)
	}
	defer rdb.Close()
	pc, err := patterns.New(rdb, &patterns.Options{Prefix: "demo"})
	if err != nil {
		return err
	}
	if err := pc.Load(ctx); err != nil {
		return err
	}
	fmt.Fprintf(w, "Loaded %d scripts.\n", len(patterns.Scripts()))
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	ran := 0
	for _, d := range demos {
		if len(want) > 0 && !want[d.name] {
			continue
		}
		fmt.Fprintf(w, "\n== %s ==\n", d.name)
		if err := d.run(ctx, pc, w); err != nil {
			return fmt.Errorf("demo %s: %w", d.name, err)
		}
		ran++
	}
	if ran == 0 {
		return fmt.Errorf("demo: no demo matches %v", names)
	}
	fmt.Fprintf(w, "\n%d demos ran.\n", ran)
	return nil
}
