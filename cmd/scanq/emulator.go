package main

import (
	"context"
	"io"

	"github.com/scanq/scanq/internal/hss/hsstest"
)

// cmdEmulator runs the HSS emulator as a server.
func cmdEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return hsstest.Main(ctx, args, stdout)
}
