package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/spf13/cobra"

	"github.com/scanq/scanq/internal/emulator"
)

// newEmulatorCmd is `scanq emulator`: the HSS emulator as a server. Its
// flags are the emulator's own (emulator.Main parses them with the flag
// package, which takes -name and --name alike), so cobra passes the
// arguments through; its help is the emulator's list of flags.
func newEmulatorCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:                "emulator [--addr HOST:PORT] [--images N] [flags]",
		Short:              "the HSS emulator as a server",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runEmulator(cmd, args)
		},
	}
	cmd.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
		// The flag package's list, with the flags spelled as elsewhere.
		var b bytes.Buffer
		_ = emulator.Main(cmd.Context(), []string{"-h"}, &b)
		_, list, _ := strings.Cut(b.String(), "\n")
		list = strings.ReplaceAll("\n"+list, "\n  -", "\n  --")
		fmt.Fprintf(cmd.OutOrStdout(), "%s\n\nUsage:\n  %s\n\nFlags:%s", cmd.Short, cmd.UseLine(), list)
	})
	return cmd
}

// runEmulator runs the emulator until ctx ends. What it prints before it
// listens is held back: a flag it refuses makes the flag package print the
// whole list of flags, which becomes a usage error of one line instead.
func runEmulator(cmd *cobra.Command, args []string) error {
	for _, a := range args {
		if a == "--" {
			break
		}
		if a == "-h" || a == "--help" || a == "-help" {
			// The flags before it must parse, as cobra's commands' do: the
			// emulator's parser stops at the help flag without running.
			if err := emulator.Main(cmd.Context(), args, io.Discard); err != nil {
				if isFlagError(err) {
					return usageError{cmd: cmd, err: err}
				}
				return err
			}
			return cmd.Help()
		}
	}
	w := &heldWriter{w: cmd.OutOrStdout(), until: "listening "}
	err := emulator.Main(cmd.Context(), args, w)
	if err != nil && isFlagError(err) {
		return usageError{cmd: cmd, err: err}
	}
	w.flush()
	return err
}

// isFlagError tells the flag package's parse errors, as emulator.Main
// wraps them, from the emulator's own refusals (bad values, a port in use).
func isFlagError(err error) bool {
	msg := err.Error()
	for _, s := range []string{"flag provided but not defined", "bad flag syntax", "flag needs an argument", "invalid value", "invalid boolean"} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// heldWriter holds what is written until a line starting with until has
// been written, then passes everything through.
type heldWriter struct {
	mu    sync.Mutex
	w     io.Writer
	until string
	held  bytes.Buffer
	open  bool
}

func (h *heldWriter) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open {
		return h.w.Write(p)
	}
	h.held.Write(p)
	if bytes.Contains(h.held.Bytes(), []byte(h.until)) {
		h.open = true
		if _, err := h.w.Write(h.held.Bytes()); err != nil {
			return 0, err
		}
		h.held.Reset()
	}
	return len(p), nil
}

// flush writes what is still held.
func (h *heldWriter) flush() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.open && h.held.Len() > 0 {
		_, _ = h.w.Write(h.held.Bytes())
		h.held.Reset()
	}
}
