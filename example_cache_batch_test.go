package patterns_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redispatterns/patterns"
)

func ExampleCache_GetMany() {
	ctx := context.Background()
	pc := exampleClient("cache-batch")
	products, err := patterns.NewCache[Product](pc, "products", &patterns.CacheOptions{TTL: 10 * time.Minute})
	if err != nil {
		panic(err)
	}
	keys := []string{"product:1", "product:2", "product:404"}
	defer products.DeleteMany(ctx, keys)
	if err := products.Set(ctx, "product:1", Product{ID: 1, Name: "Lamp", Price: 4200}, nil); err != nil {
		panic(err)
	}
	// One call of the loader, with only the keys the cache misses.
	loadFromDB := func(_ context.Context, keys []string) (map[string]Product, error) {
		fmt.Println("  (loading", keys, "from the database)")
		found := map[string]Product{}
		for _, k := range keys {
			if k == "product:2" {
				found[k] = Product{ID: 2, Name: "Desk", Price: 15900}
			} // product:404 left out: cached as not found
		}
		return found, nil
	}
	for i := 0; i < 2; i++ {
		res, err := products.GetMany(ctx, keys, loadFromDB, nil)
		if err != nil {
			panic(err)
		}
		for _, r := range res {
			switch {
			case errors.Is(r.Err, patterns.ErrCacheNotFound):
				fmt.Println(r.Key, "not found")
			case r.Err != nil:
				fmt.Println(r.Key, "failed:", r.Err)
			default:
				fmt.Println(r.Key, r.Value.Name)
			}
		}
	}
	// Output:
	//   (loading [product:2 product:404] from the database)
	// product:1 Lamp
	// product:2 Desk
	// product:404 not found
	// product:1 Lamp
	// product:2 Desk
	// product:404 not found
}
