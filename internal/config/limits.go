package config

import "github.com/modelorganisms/pvbuild/internal/inputfile"

// Limits on what an experiment file may hold, so that no input can exhaust
// memory or the parser's stack.
const (
	// MaxExperimentBytes bounds experiment.hcl itself.
	MaxExperimentBytes = 4 << 20
	// MaxInputBytes bounds every file the experiment names.
	MaxInputBytes = inputfile.DefaultLimit
	// MaxNesting bounds the depth of ( [ { and ${ in experiment.hcl: HCL's
	// parser recurses once per level and would overflow the stack.
	MaxNesting = 128
)
