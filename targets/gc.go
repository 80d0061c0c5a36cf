package targets

import (
	"os"
	"runtime/debug"

	"github.com/modelorganisms/pvbuild/internal/pipeline"
)

// A command's heap is mostly built once and kept to its end (the graph,
// the index, the keys), so the default collector pace spends a fifth of a
// large no-op plan's CPU re-marking it. GOGC, when set, still decides.
func init() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(pipeline.CommandGCPercent)
	}
}
