package main

import (
	"fmt"
	"io"
	"os"

	"github.com/scanq/scanq/configs"
)

// cmdConfig is `scanq config validate [FILE]` and `scanq config show [FILE]`.
func cmdConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || (args[0] != "validate" && args[0] != "show") {
		fmt.Fprintln(stderr, "Usage: scanq config validate [FILE] | scanq config show [FILE]")
		return exitError{2}
	}
	sub := args[0]
	var cf configFlags
	fs := newFlagSet("config "+sub, stderr, "config "+sub+" [FILE] [--set SECTION.KEY=VALUE ...]")
	cf.register(fs.FlagSet)
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return exitError{2}
	}
	if fs.NArg() == 1 {
		cf.file = fs.Arg(0)
	}
	cfg, err := configs.Load(configs.LoadOptions{File: cf.file, Env: os.Environ(), Set: cf.set})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return exitError{1}
	}
	if sub == "show" {
		return cfg.WriteYAML(stdout)
	}
	name := cf.file
	if name == "" {
		name = "configuration"
	}
	fmt.Fprintf(stdout, "%s: ok\n", name)
	return nil
}
