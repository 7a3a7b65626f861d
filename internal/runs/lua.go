package runs

import (
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"
)

// Conventions of the package's Lua scripts. Each script is documented
// above its declaration as hibiken/asynq documents its own: a KEYS[n] /
// ARGV[n] / Output block. Keys are written there without the store's
// prefix (Options.Prefix, "scanq:" by default): run:{<id>} is
// <prefix>run:{<id>}. A script whose Go side passes several ARGV has an
// args type next to it, whose argv method lays the values out in their
// slots. The shared fragments (stateLua, finalLua, completeLua, settleLua,
// backlogLua, markLua, codesLua) define Lua functions and constants that
// the scripts concatenated with them call; their blocks say which KEYS and
// ARGV those read.

// code is the outcome of a script that creates, records or moves a run:
// an integer in the script's answer (scriptCode reads it), named alike on
// both sides (codesLua). What each script answers is in its Output block.
type code int64

const (
	// codeGone: there is no such run; for saveSnapshotScript, or it is
	// final.
	codeGone code = -1
	// codeAlready: nothing was done, as it was done before: the id is
	// taken (createScript), the run is final (stopScript), the page or
	// batch is recorded (pageDoneScript, batchDoneScript,
	// saveSnapshotScript).
	codeAlready code = 0
	// codeDone: this call did it: created, stopped, recorded or stored.
	codeDone code = 1
	// codeEnded (pageDoneScript, batchDoneScript): this call recorded the
	// page or batch, and that ended the run.
	codeEnded code = 2
	// codeNextPass (pageDoneScript): this call recorded the page, and that
	// ended a pass and started the next.
	codeNextPass code = 3
	// codeExisting (saveSnapshotScript): a result was stored already, and
	// stands.
	codeExisting code = 2
)

// codesLua names the codes in Lua as GONE, ALREADY, DONE, ENDED,
// NEXT_PASS and EXISTING. It reads no KEYS or ARGV.
var codesLua = fmt.Sprintf(`
local GONE, ALREADY, DONE, ENDED, NEXT_PASS, EXISTING = %d, %d, %d, %d, %d, %d
`, codeGone, codeAlready, codeDone, codeEnded, codeNextPass, codeExisting)

// scriptCode decodes the answer of a script that answers with a code:
// the code, and, when the answer is an array that begins with it, the
// array's other elements.
func scriptCode(cmd *redis.Cmd) (code, []any, error) {
	v, err := cmd.Result()
	if err != nil {
		return 0, nil, err
	}
	switch v := v.(type) {
	case int64:
		return code(v), nil, nil
	case []any:
		if len(v) > 0 {
			if c, ok := v[0].(int64); ok {
				return code(c), v[1:], nil
			}
		}
	}
	return 0, nil, fmt.Errorf("script answered %v, not an outcome code", v)
}

// luaStrings is a list of strings as Lua arguments: "a", "b".
func luaStrings(ss []string) string {
	out := ""
	for i, s := range ss {
		if i > 0 {
			out += ", "
		}
		out += strconv.Quote(s)
	}
	return out
}
