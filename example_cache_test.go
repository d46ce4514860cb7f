package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

type Product struct {
	ID    int
	Name  string
	Price int
}

func ExampleCache_Get() {
	ctx := context.Background()
	pc := exampleClient("cache")
	products, err := patterns.NewCache[Product](pc, "products", &patterns.CacheOptions{TTL: 10 * time.Minute})
	if err != nil {
		panic(err)
	}
	defer products.Delete(ctx, "product:1")
	defer products.Delete(ctx, "product:404")
	loadFromDB := func(id int) func(context.Context) (Product, error) {
		return func(context.Context) (Product, error) {
			fmt.Println("  (loading product", id, "from the database)")
			if id == 404 {
				return Product{}, patterns.ErrCacheNotFound // cached too, for NegativeTTL
			}
			return Product{ID: id, Name: "Lamp", Price: 4200}, nil
		}
	}
	tagged := &patterns.CacheSetOptions{Tags: []string{"catalog"}}
	for i := 0; i < 2; i++ {
		p, err := products.Get(ctx, "product:1", loadFromDB(1), tagged)
		fmt.Println(p.Name, err)
	}
	_, err = products.Get(ctx, "product:404", loadFromDB(404), nil)
	fmt.Println(errors.Is(err, patterns.ErrCacheNotFound))

	// A price change: invalidate every entry tagged "catalog" at once.
	products.InvalidateTags(ctx, "catalog")
	p, _ := products.Get(ctx, "product:1", loadFromDB(1), tagged)
	fmt.Println(p.Name, products.Stats().Hits)
	// Output:
	//   (loading product 1 from the database)
	// Lamp <nil>
	// Lamp <nil>
	//   (loading product 404 from the database)
	// true
	//   (loading product 1 from the database)
	// Lamp 1
}

// A local layer in front of Redis: hot keys are served from memory, and a
// write anywhere (here, through a second cache standing for another process)
// evicts them from every layer.
func ExampleCacheLocalOptions() {
	ctx := context.Background()
	pc := exampleClient("cache-local")
	opt := &patterns.CacheOptions{TTL: time.Minute, Local: &patterns.CacheLocalOptions{MaxEntries: 10_000, TTL: 30 * time.Second}}
	here, err := patterns.NewCache[Product](pc, "products", opt)
	if err != nil {
		panic(err)
	}
	defer here.Close() // stops the layer's invalidation connection
	elsewhere, _ := patterns.NewCache[Product](pc, "products", opt)
	defer elsewhere.Close()
	defer here.Delete(ctx, "product:1")

	here.Set(ctx, "product:1", Product{ID: 1, Name: "Lamp", Price: 4200}, nil)
	// The layer stores what it reads once its invalidation channel is up.
	for i := 0; i < 5000 && here.Stats().LocalHits == 0; i++ {
		here.Lookup(ctx, "product:1")
		time.Sleep(time.Millisecond)
	}
	p, _, _ := here.Lookup(ctx, "product:1")
	fmt.Println(p.Price, here.Stats().LocalHits > 0)

	// Another process changes the price: the local copy goes at once.
	elsewhere.Set(ctx, "product:1", Product{ID: 1, Name: "Lamp", Price: 3900}, nil)
	for i := 0; i < 5000 && p.Price == 4200; i++ {
		p, _, _ = here.Lookup(ctx, "product:1")
		time.Sleep(time.Millisecond)
	}
	fmt.Println(p.Price)
	// Output:
	// 4200 true
	// 3900
}
