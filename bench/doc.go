// Package bench compares the patterns library with peer libraries, in the same
// process against the same Redis. It is a module of its own so that the peers
// never enter the library's go.mod. Run from this folder:
//
//	go test -run '^$' -bench . -benchmem
package bench
