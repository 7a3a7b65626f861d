package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// repoRoot is the scanq repository, where the deployment files live.
const repoRoot = "../.."

// scanqBin is the scanq binary built from this checkout by TestMain.
var scanqBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scanq-deploy-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy: make temp dir:", err)
		os.Exit(1)
	}
	scanqBin = filepath.Join(dir, "scanq")
	build := exec.Command("go", "build", "-o", scanqBin, "./cmd/scanq")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "deploy: building scanq: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// commandLine matches a command in `scanq help`: two spaces, then a lower
// case word (flags start with "-", section titles are not indented).
var commandLine = regexp.MustCompile(`^  ([a-z][a-z-]*)\b`)

// subcommands runs `scanq help` and returns the command names it lists.
func subcommands(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command(scanqBin, "help").Output()
	if err != nil {
		t.Fatalf("scanq help: %v", err)
	}
	cmds := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if m := commandLine.FindStringSubmatch(sc.Text()); m != nil {
			cmds[m[1]] = true
		}
	}
	return cmds
}

func TestSubcommandsParsed(t *testing.T) {
	t.Parallel()
	cmds := subcommands(t)
	// The roles docker-compose.yml runs must be found, or the parsing above
	// is broken and every other check would be vacuous.
	for _, want := range []string{"api", "worker", "scheduler", "emulator", "serve"} {
		if !cmds[want] {
			t.Errorf("`scanq help` does not list %q (parsed: %v)", want, cmds)
		}
	}
}

// runHelp runs `scanq ARGS... -h` with only env (as in the container) and
// returns an error unless it exits 0: the subcommand exists and accepts
// every flag it is given.
func runHelp(ctx context.Context, args []string, env []string) error {
	cmd := exec.CommandContext(ctx, scanqBin, append(append([]string{}, args...), "-h")...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("`scanq %s -h`: %v: %s", strings.Join(args, " "), err, firstLines(out, 3))
	}
	return nil
}

func firstLines(b []byte, n int) string {
	lines := strings.SplitN(strings.TrimSpace(string(b)), "\n", n+1)
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}
