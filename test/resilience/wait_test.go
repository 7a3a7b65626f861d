package resilience

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// waitFor calls cond until it returns nil, and fails t (Fatal) if it has not
// by timeout, naming what was waited for and what cond last saw instead.
// cond's error is that state ("run X running {...}", an API error, the end
// of a process's output); it is read only when waitFor gives up. When
// waiting longer cannot help (a process exited), cond fails t itself.
//
// The suite polls real processes over HTTP and Redis, so cond is called at
// once, then at intervals growing from 10 ms to 100 ms: a state that comes
// soon is seen soon, and a long wait costs the fleet under test at most ten
// calls a second. (testkit.Eventually, made for in-process state, polls
// every 5 ms at most and does not report the last state.)
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := 10 * time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		last := cond()
		if last == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last seen: %v", timeout, what, last)
			return
		}
		time.Sleep(wait)
	}
}

// tcpQueues reads the kernel's view of one TCP connection over IPv4
// (/proc/net/tcp): the bytes its sender has not had acknowledged
// (tx_queue), the bytes received that its process has not read
// (rx_queue), and its socket's inode, 0 while the connection waits in the
// listener's accept queue. local and remote are the connection's ends as
// seen from the socket in question.
func tcpQueues(local, remote net.Addr) (tx, rx int64, inode uint64, err error) {
	want := func(a net.Addr) (string, error) {
		ta, ok := a.(*net.TCPAddr)
		if !ok || ta.IP.To4() == nil {
			return "", fmt.Errorf("%v is not a TCP address over IPv4", a)
		}
		ip := ta.IP.To4()
		// The kernel prints the address as the 32-bit word in host
		// order (little-endian here) and the port in hex.
		return fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], ta.Port), nil
	}
	l, err := want(local)
	if err != nil {
		return 0, 0, 0, err
	}
	r, err := want(remote)
	if err != nil {
		return 0, 0, 0, err
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode ...
		fields := strings.Fields(sc.Text())
		if len(fields) < 10 || fields[1] != l || fields[2] != r {
			continue
		}
		txs, rxs, _ := strings.Cut(fields[4], ":")
		if tx, err = strconv.ParseInt(txs, 16, 64); err == nil {
			if rx, err = strconv.ParseInt(rxs, 16, 64); err == nil {
				inode, err = strconv.ParseUint(fields[9], 10, 64)
			}
		}
		return tx, rx, inode, err
	}
	if err := sc.Err(); err != nil {
		return 0, 0, 0, err
	}
	return 0, 0, 0, fmt.Errorf("no connection %s -> %s in /proc/net/tcp", local, remote)
}
