package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/scanq/scanq/configs"
)

// newConfigCmd is `scanq config validate [FILE]` and `scanq config show
// [FILE]`.
func newConfigCmd() *cobra.Command {
	cmd := group(&cobra.Command{
		Use:   "config",
		Short: "check a configuration, or print the effective one (config validate|show [FILE])",
	})
	for _, sub := range []struct{ name, short string }{
		{"validate", "check a configuration, naming every bad field"},
		{"show", "print the effective configuration, secrets redacted"},
	} {
		var cf configFlags
		c := &cobra.Command{
			Use:   sub.name + " [FILE] [--set SECTION.KEY=VALUE ...]",
			Short: sub.short,
			Args:  maxArgs(1, "one FILE"),
			RunE: func(cmd *cobra.Command, args []string) error {
				if len(args) == 1 {
					cf.file = args[0]
				}
				stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
				cfg, err := configs.Load(configs.LoadOptions{File: cf.file, Env: os.Environ(), Set: cf.set})
				if err != nil {
					fmt.Fprintln(stderr, err)
					return exitError{exitFailure}
				}
				if sub.name == "show" {
					return cfg.WriteYAML(stdout)
				}
				name := cf.file
				if name == "" {
					name = "configuration"
				}
				fmt.Fprintf(stdout, "%s: ok\n", name)
				return nil
			},
		}
		cf.register(c.Flags())
		cmd.AddCommand(c)
	}
	return cmd
}
