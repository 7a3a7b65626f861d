package resilience

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/scanq/scanq/internal/testkit"
)

// proc is one child process: a scanq role, the emulator or redis-server.
type proc struct {
	name string
	cmd  *exec.Cmd
	out  *testkit.Buffer // stdout and stderr
	done chan struct{}
	// stopped is set when the test ends the process on purpose (a signal);
	// an exit without it is a crash.
	stopped  atomic.Bool
	exitedAt time.Time
	state    *os.ProcessState
	waitErr  error
}

// startProc starts path args with env; the process is ended when the test
// ends if it is still running.
func startProc(t *testing.T, name string, env []string, path string, args ...string) *proc {
	t.Helper()
	p := spawn(t, name, env, path, args...)
	t.Cleanup(p.stop)
	return p
}

// spawn starts path args with env; ending it is the caller's business.
func spawn(t *testing.T, name string, env []string, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, out: &testkit.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Env = env
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.exitedAt = time.Now()
		p.state, p.waitErr = p.cmd.ProcessState, err
		close(p.done)
	}()
	return p
}

// stop ends the process if it still runs: SIGTERM, then SIGKILL after 15 s.
func (p *proc) stop() {
	if !p.alive() {
		return
	}
	p.stopped.Store(true)
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

func (p *proc) alive() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// signal sends sig and marks the exit that follows as intended.
func (p *proc) signal(t *testing.T, sig syscall.Signal) time.Time {
	t.Helper()
	p.stopped.Store(true)
	at := time.Now()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%s (pid %d): sending %s: %v", p.name, p.pid(), sig, err)
	}
	return at
}

// waitExit waits up to limit for the process to end and returns its exit
// code (-1 when killed by a signal) and when it ended.
func (p *proc) waitExit(t *testing.T, limit time.Duration) (code int, at time.Time) {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(limit):
		t.Fatalf("%s (pid %d) still running %s after it was told to stop\n%s", p.name, p.pid(), limit, p.tail(30))
	}
	return p.state.ExitCode(), p.exitedAt
}

// exitText describes how the process ended.
func (p *proc) exitText() string {
	if p.alive() {
		return "running"
	}
	if ws, ok := p.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("exit %d", p.state.ExitCode())
}

// waitOutput waits for s to appear in the output.
func (p *proc) waitOutput(t *testing.T, s string, limit time.Duration) {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("%s to print %q", p.name, s), func() error {
		t.Helper()
		if strings.Contains(p.out.String(), s) {
			return nil
		}
		if !p.alive() {
			t.Fatalf("%s exited (%s) before printing %q:\n%s", p.name, p.exitText(), s, p.tail(40))
		}
		return fmt.Errorf("not printed yet:\n%s", p.tail(40))
	})
}

// tail is the last n lines of the output, indented, for failure messages.
func (p *proc) tail(n int) string {
	lines := strings.Split(strings.TrimRight(p.out.String(), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return fmt.Sprintf("---- %s (pid %d, %s), last %d lines ----\n  %s", p.name, p.pid(), p.exitText(), len(lines), strings.Join(lines, "\n  "))
}

// crashed says why the process counts as crashed, "" when it did not:
// it ended without being told to, or it printed a Go panic or fatal error.
func (p *proc) crashed() string {
	out := p.out.String()
	for _, s := range []string{"panic:", "fatal error:", "[running]:"} {
		if i := strings.Index(out, s); i >= 0 {
			lo := max(0, i-200)
			return fmt.Sprintf("printed %q: ...%s", s, out[lo:min(len(out), i+400)])
		}
	}
	if !p.alive() && !p.stopped.Load() {
		return "ended on its own: " + p.exitText()
	}
	return ""
}

// freePort returns a TCP port on 127.0.0.1 nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// baseEnv is the test's environment without any SCANQ_* or CLOUD_SDK_*
// variable: the processes get exactly the configuration a test gives them.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "SCANQ_") || strings.HasPrefix(kv, "CLOUD_SDK_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
