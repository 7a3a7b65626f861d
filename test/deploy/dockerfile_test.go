package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/scanq/scanq/configs"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	line int    // where it starts
	cmd  string // upper case: FROM, RUN, ...
	args string
}

// stage is one FROM and what follows it up to the next FROM.
type stage struct {
	base, name string
	ins        []instruction
}

// parseDockerfile splits a Dockerfile into stages. It knows the part of the
// syntax this repository uses: comments, blank lines, backslash
// continuations (with comment lines inside them) and `FROM [--flag] IMAGE
// [AS NAME]`.
func parseDockerfile(text string) ([]stage, error) {
	var ins []instruction
	var cur *instruction
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cont := strings.HasSuffix(line, `\`)
		line = strings.TrimSpace(strings.TrimSuffix(line, `\`))
		if cur == nil {
			cmd, args, _ := strings.Cut(line, " ")
			ins = append(ins, instruction{line: n, cmd: strings.ToUpper(cmd), args: strings.TrimSpace(args)})
			cur = &ins[len(ins)-1]
		} else {
			cur.args += " " + line
		}
		if !cont {
			cur = nil
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var stages []stage
	for _, in := range ins {
		if in.cmd == "FROM" {
			var words []string
			for _, w := range strings.Fields(in.args) {
				if !strings.HasPrefix(w, "--") {
					words = append(words, w)
				}
			}
			st := stage{}
			switch {
			case len(words) == 1:
				st.base = words[0]
			case len(words) == 3 && strings.EqualFold(words[1], "AS"):
				st.base, st.name = words[0], words[2]
			default:
				return nil, fmt.Errorf("line %d: FROM %s: want IMAGE [AS NAME]", in.line, in.args)
			}
			stages = append(stages, st)
			continue
		}
		if len(stages) == 0 {
			if in.cmd == "ARG" {
				continue // global build arguments
			}
			return nil, fmt.Errorf("line %d: %s before the first FROM", in.line, in.cmd)
		}
		stages[len(stages)-1].ins = append(stages[len(stages)-1].ins, in)
	}
	if len(stages) == 0 {
		return nil, fmt.Errorf("no FROM")
	}
	return stages, nil
}

// Names of the images a final stage may start from: static binaries need
// nothing more, and nothing more is less to patch.
var smallBases = regexp.MustCompile(`^(scratch|gcr\.io/distroless/static(-debian\d+)?(:[a-z0-9.-]+)?(@sha256:[0-9a-f]+)?)$`)

var goBuilder = regexp.MustCompile(`^(docker\.io/)?(library/)?golang:(\d+)\.(\d+)`)

// checkDockerfile checks a multi-stage build of a static binary into a
// small, non-root final image. goVersion is the go directive of go.mod;
// apiPort the port api.addr listens on by default.
func checkDockerfile(text, goVersion, apiPort string) []error {
	stages, err := parseDockerfile(text)
	if err != nil {
		return []error{err}
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(stages) < 2 {
		fail("%d stage: want a multi-stage build (a Go toolchain stage and a small final stage)", len(stages))
		return errs
	}
	final := stages[len(stages)-1]
	by := func(st stage, cmd string) []instruction {
		var out []instruction
		for _, in := range st.ins {
			if in.cmd == cmd {
				out = append(out, in)
			}
		}
		return out
	}

	// Final stage: small, non-root, /scanq as the entrypoint.
	if !smallBases.MatchString(final.base) {
		fail("final stage FROM %s: want gcr.io/distroless/static...:nonroot or scratch", final.base)
	}
	if users := by(final, "USER"); len(users) > 0 {
		u, _, _ := strings.Cut(users[len(users)-1].args, ":")
		if u == "" || u == "root" || u == "0" {
			fail("final stage USER %s: want a non-root user", users[len(users)-1].args)
		}
	} else if !strings.Contains(final.base, ":nonroot") {
		fail("final stage runs as root: set USER (e.g. 65532:65532) or use a distroless :nonroot image")
	}
	if len(by(final, "RUN")) > 0 {
		fail("final stage has RUN: the final image has no shell and should get only the binary")
	}
	var ep []string
	if eps := by(final, "ENTRYPOINT"); len(eps) == 0 || json.Unmarshal([]byte(eps[len(eps)-1].args), &ep) != nil || !slices.Equal(ep, []string{"/scanq"}) {
		fail(`final stage: want ENTRYPOINT ["/scanq"] (exec form, so scanq is PID 1 and gets SIGTERM)`)
	}
	exposed := false
	for _, in := range by(final, "EXPOSE") {
		for _, p := range strings.Fields(in.args) {
			if strings.TrimSuffix(p, "/tcp") == apiPort {
				exposed = true
			}
		}
	}
	if !exposed {
		fail("final stage: want EXPOSE %s, the port of api.addr", apiPort)
	}
	// api.addr defaults to loopback, which no published port reaches: the
	// image listens on every interface of the container, and stays closed
	// without credentials unless the operator allows an open API.
	env := map[string]string{}
	for _, in := range by(final, "ENV") {
		f := strings.Fields(in.args)
		if len(f) == 2 && !strings.Contains(f[0], "=") {
			env[f[0]] = f[1]
			continue
		}
		for _, kv := range f {
			if k, v, ok := strings.Cut(kv, "="); ok {
				env[k] = strings.Trim(v, `"`)
			}
		}
	}
	if host, port, err := net.SplitHostPort(env["SCANQ_API_ADDR"]); err != nil || port != apiPort || (host != "" && host != "0.0.0.0" && host != "::") {
		fail("final stage: want ENV SCANQ_API_ADDR=:%s (the default api.addr is loopback, unreachable from outside the container), got %q", apiPort, env["SCANQ_API_ADDR"])
	}
	if v := env["SCANQ_API_ALLOW_UNAUTHENTICATED"]; v != "" && v != "false" {
		fail("final stage: ENV SCANQ_API_ALLOW_UNAUTHENTICATED=%s opens every container of the image without credentials: leave it to `docker run -e`", v)
	}

	// The binary comes from a Go build stage.
	var from, src string
	for _, in := range by(final, "COPY") {
		f := strings.Fields(in.args)
		if len(f) == 3 && strings.HasPrefix(f[0], "--from=") && f[2] == "/scanq" {
			from, src = strings.TrimPrefix(f[0], "--from="), f[1]
		}
	}
	if from == "" {
		fail("final stage: want COPY --from=STAGE BINARY /scanq")
		return errs
	}
	var build *stage
	for i := range stages[:len(stages)-1] {
		if stages[i].name == from || strconv.Itoa(i) == from {
			build = &stages[i]
		}
	}
	if build == nil {
		fail("COPY --from=%s: no such build stage", from)
		return errs
	}
	if m := goBuilder.FindStringSubmatch(build.base); m == nil {
		fail("build stage FROM %s: want golang:MAJOR.MINOR", build.base)
	} else if !versionAtLeast(m[3]+"."+m[4], goVersion) {
		fail("build stage FROM %s: older than go %s of go.mod", build.base, goVersion)
	}
	cached := false
	var goBuild string
	for _, in := range by(*build, "RUN") {
		if strings.Contains(in.args, "--mount=type=cache,target=/go/pkg/mod") {
			cached = true
		}
		if strings.Contains(in.args, "go build") {
			goBuild = in.args
		}
	}
	if !cached {
		fail("build stage: want a module cache mount, RUN --mount=type=cache,target=/go/pkg/mod")
	}
	if goBuild == "" {
		fail("build stage: no RUN go build")
		return errs
	}
	envCGO := false
	for _, in := range by(*build, "ENV") {
		if slices.Contains(strings.Fields(in.args), "CGO_ENABLED=0") {
			envCGO = true
		}
	}
	words := strings.Fields(goBuild)
	if !envCGO && !slices.Contains(words, "CGO_ENABLED=0") {
		fail("go build without CGO_ENABLED=0: the binary would need libc, which distroless/static and scratch lack")
	}
	if !slices.Contains(words, "-trimpath") {
		fail("go build without -trimpath")
	}
	if !strings.Contains(goBuild, `-ldflags "-s -w"`) && !strings.Contains(goBuild, `-ldflags="-s -w"`) {
		fail(`go build without -ldflags "-s -w"`)
	}
	if !slices.Contains(words, "./cmd/scanq") {
		fail("go build does not build ./cmd/scanq")
	}
	if i := slices.Index(words, "-o"); i < 0 || i+1 >= len(words) || path.Clean(words[i+1]) != path.Clean(src) {
		fail("go build -o does not write %s, the file the final stage copies", src)
	}
	return errs
}

// versionAtLeast compares MAJOR.MINOR[.PATCH] versions by major and minor.
func versionAtLeast(have, want string) bool {
	parse := func(v string) (int, int) {
		f := strings.SplitN(v, ".", 3)
		if len(f) < 2 {
			return 0, 0
		}
		a, _ := strconv.Atoi(f[0])
		b, _ := strconv.Atoi(f[1])
		return a, b
	}
	ha, hb := parse(have)
	wa, wb := parse(want)
	return ha > wa || (ha == wa && hb >= wb)
}

// goDirective is the go version of the main module's go.mod.
func goDirective(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(repoRoot + "/go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal("go.mod has no go directive")
	return ""
}

// defaultAPIPort is the port of api.addr in the embedded defaults.
func defaultAPIPort(t *testing.T) string {
	t.Helper()
	cfg, err := configs.Load(configs.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, port, err := net.SplitHostPort(cfg.API.Addr)
	if err != nil {
		t.Fatalf("api.addr %q: %v", cfg.API.Addr, err)
	}
	return port
}

func readDockerfile(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile(repoRoot + "/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	text := readDockerfile(t)
	for _, err := range checkDockerfile(text, goDirective(t), defaultAPIPort(t)) {
		t.Error(err)
	}
	// The default command, `docker run scanq`, must be a scanq command line.
	stages, err := parseDockerfile(text)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range stages[len(stages)-1].ins {
		if in.cmd != "CMD" {
			continue
		}
		var args []string
		if err := json.Unmarshal([]byte(in.args), &args); err != nil || len(args) == 0 {
			t.Errorf("CMD %s: want the exec form with a scanq subcommand", in.args)
			continue
		}
		if err := runHelp(t.Context(), args, nil); err != nil {
			t.Errorf("CMD %s: %v", in.args, err)
		}
	}
}

// TestDockerfileChecksFail breaks the Dockerfile in one way per case
// (replacing every occurrence of old) and expects checkDockerfile to say so.
func TestDockerfileChecksFail(t *testing.T) {
	t.Parallel()
	orig := readDockerfile(t)
	goVersion, apiPort := goDirective(t), defaultAPIPort(t)
	tests := []struct {
		name, old, new, want string
	}{
		{"cgo on", "CGO_ENABLED=0 GOOS", "CGO_ENABLED=1 GOOS", "without CGO_ENABLED=0"},
		{"no trimpath", "-trimpath ", "", "without -trimpath"},
		{"symbols kept", `-ldflags "-s -w"`, `-ldflags ""`, `without -ldflags "-s -w"`},
		{"single stage", "FROM gcr.io/distroless/static-debian12:nonroot\nCOPY --from=build /out/scanq /scanq\n", "", "want a multi-stage build"},
		{"root user", "USER nonroot:nonroot", "USER root", "want a non-root user"},
		{"uid 0", "USER nonroot:nonroot", "USER 0:0", "want a non-root user"},
		{"scratch without USER", "FROM gcr.io/distroless/static-debian12:nonroot\nCOPY --from=build /out/scanq /scanq\nUSER nonroot:nonroot\n", "FROM scratch\nCOPY --from=build /out/scanq /scanq\n", "runs as root"},
		{"distroless root tag without USER", "FROM gcr.io/distroless/static-debian12:nonroot\nCOPY --from=build /out/scanq /scanq\nUSER nonroot:nonroot\n", "FROM gcr.io/distroless/static-debian12\nCOPY --from=build /out/scanq /scanq\n", "runs as root"},
		{"big final image", "FROM gcr.io/distroless/static-debian12:nonroot", "FROM debian:12", "want gcr.io/distroless/static"},
		{"shell entrypoint", `ENTRYPOINT ["/scanq"]`, `ENTRYPOINT /scanq`, `want ENTRYPOINT ["/scanq"]`},
		{"port not exposed", "EXPOSE 8080", "EXPOSE 9090", "want EXPOSE 8080"},
		{"API on the container's loopback", "ENV SCANQ_API_ADDR=:8080", "ENV SCANQ_API_ADDR=127.0.0.1:8080", "want ENV SCANQ_API_ADDR=:8080"},
		{"API address left to the default", "ENV SCANQ_API_ADDR=:8080\n", "", "want ENV SCANQ_API_ADDR=:8080"},
		{"open by default", "ENV SCANQ_API_ADDR=:8080", "ENV SCANQ_API_ADDR=:8080 SCANQ_API_ALLOW_UNAUTHENTICATED=true", "opens every container"},
		{"old toolchain", "golang:1.26 AS build", "golang:1.21 AS build", "older than go"},
		{"no module cache", "--mount=type=cache,target=/go/pkg/mod", "--mount=type=cache,target=/tmp/mod", "want a module cache mount"},
		{"binary elsewhere", "-o /out/scanq", "-o /out/scanqd", "does not write /out/scanq"},
		{"other command", "./cmd/scanq\n", "./cmd/other\n", "does not build ./cmd/scanq"},
		{"copy from nowhere", "COPY --from=build", "COPY --from=builder", "no such build stage"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(orig, tt.old) {
				t.Fatalf("Dockerfile no longer contains %q: update this case", tt.old)
			}
			var msgs []string
			for _, err := range checkDockerfile(strings.ReplaceAll(orig, tt.old, tt.new), goVersion, apiPort) {
				if strings.Contains(err.Error(), tt.want) {
					return
				}
				msgs = append(msgs, err.Error())
			}
			t.Errorf("no error contains %q; got %q", tt.want, msgs)
		})
	}
}

// ---- .dockerignore ----------------------------------------------------------

// ignoreRules compiles .dockerignore patterns the way Docker reads them:
// paths relative to the context, `*` and `?` within one path element, `**`
// across elements, and a pattern excluding a directory excludes what is in
// it. Exceptions (`!`) are refused rather than half-implemented.
func ignoreRules(text string) ([]*regexp.Regexp, error) {
	var rules []*regexp.Regexp
	for line := range strings.Lines(text) {
		p := strings.TrimSpace(line)
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if strings.HasPrefix(p, "!") {
			return nil, fmt.Errorf(".dockerignore: exception %q: this test does not evaluate exceptions", p)
		}
		p = path.Clean(strings.TrimPrefix(p, "/"))
		var re strings.Builder
		re.WriteString("^")
		for i := 0; i < len(p); i++ {
			switch c := p[i]; {
			case strings.HasPrefix(p[i:], "**/"):
				re.WriteString("(.*/)?")
				i += 2
			case strings.HasPrefix(p[i:], "**"):
				re.WriteString(".*")
				i++
			case c == '*':
				re.WriteString("[^/]*")
			case c == '?':
				re.WriteString("[^/]")
			default:
				re.WriteString(regexp.QuoteMeta(string(c)))
			}
		}
		re.WriteString("(/.*)?$") // the directory and everything in it
		rx, err := regexp.Compile(re.String())
		if err != nil {
			return nil, fmt.Errorf(".dockerignore: %q: %w", p, err)
		}
		rules = append(rules, rx)
	}
	return rules, nil
}

// buildInputs lists, relative to the repository, the files `go build
// ./cmd/scanq` reads inside the builder: go.mod, go.sum and the Go and
// embedded files of every package of this module the binary is made of.
func buildInputs(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps",
		"-f", `{{if and .Module .Module.Main}}{{$d := .Dir}}{{range .GoFiles}}{{$d}}/{{.}}
{{end}}{{range .EmbedFiles}}{{$d}}/{{.}}
{{end}}{{end}}`, "./cmd/scanq")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	mod := exec.Command("go", "list", "-m", "-f", "{{.Dir}}")
	mod.Dir = repoRoot
	dir, err := mod.Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	base := strings.TrimSpace(string(dir)) + string(os.PathSeparator)
	files := []string{"go.mod", "go.sum"}
	for line := range strings.Lines(string(out)) {
		if f := strings.TrimSpace(line); f != "" {
			files = append(files, strings.TrimPrefix(f, base))
		}
	}
	return files
}

// checkIgnored returns the files of inputs that rules keep out of the
// build context.
func checkIgnored(rules []*regexp.Regexp, inputs []string) []string {
	var out []string
	for _, f := range inputs {
		for _, rx := range rules {
			if rx.MatchString(f) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

func TestDockerignore(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(repoRoot + "/.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	inputs := buildInputs(t)
	if !slices.Contains(inputs, "configs/scanq.yaml") || !slices.Contains(inputs, "cmd/scanq/main.go") {
		t.Fatalf("build inputs lack configs/scanq.yaml or cmd/scanq/main.go: %q", inputs)
	}
	tests := []struct {
		name    string
		extra   string // appended to .dockerignore
		ignored string // a build input that must then be ignored; "" = none
	}{
		{"the file as it is", "", ""},
		{"embedded defaults", "*.yaml\n**/*.yaml", "configs/scanq.yaml"},
		{"a package directory", "/configs/", "configs/config.go"},
		{"go.sum", "go.sum", "go.sum"},
		{"all Go files", "**/*.go", "cmd/scanq/main.go"},
		{"one level of wildcard", "cmd/*", "cmd/scanq/main.go"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rules, err := ignoreRules(string(data) + "\n" + tt.extra + "\n")
			if err != nil {
				t.Fatal(err)
			}
			got := checkIgnored(rules, inputs)
			if tt.ignored == "" && len(got) > 0 {
				t.Errorf(".dockerignore keeps build inputs out of the context: %q", got)
			}
			if tt.ignored != "" && !slices.Contains(got, tt.ignored) {
				t.Errorf("with %q added, %s should be ignored; ignored: %q", tt.extra, tt.ignored, got)
			}
		})
	}
}
