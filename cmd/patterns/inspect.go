package main

import (
	"context"
	"fmt"
	"io"
)

func cmdInspect(ctx context.Context, args []string, w io.Writer) error {
	return fmt.Errorf("inspect: not implemented")
}
